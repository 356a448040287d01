"""The sample events of events/ (for `sam local invoke`) still do what their names say."""

from __future__ import annotations

import pytest

from devstack.clerk import SigningKey
from devstack.demo import DEMO_PROJECT, DEMO_USER
from devstack.sample_events import sample_events
from support.events import load_event
from support.http_api import invoke
from support.store import Store


@pytest.fixture
def demo(store: Store, monkeypatch: pytest.MonkeyPatch) -> Store:
    # As in env.json for local invokes: the development key verifies, no JWKS is fetched.
    monkeypatch.setenv("CLERK_JWT_KEY", SigningKey.development().public_pem())
    store.put_project(DEMO_PROJECT, owner_id=DEMO_USER)
    store.put_message("k58xyz789ghi012", project_id=DEMO_PROJECT, conversation_id="conv_a")
    store.put_message("k59abc456def789", project_id=DEMO_PROJECT, conversation_id="conv_b")
    return store


@pytest.mark.parametrize(
    ("name", "status", "body"),
    [
        ("cancel-bearer.json", 200, {"success": True, "cancelled": True}),
        ("cancel-cookie.json", 200, {"success": True, "cancelled": True}),
        ("cancel-bad-body.json", 400, {"success": False}),
        ("cancel-no-token.json", 401, {"success": False}),
    ],
)
@pytest.mark.usefixtures("demo")
def test_sample_event(lambda_context, name, status, body):
    answer = invoke(load_event(name), lambda_context)

    assert answer.status == status
    assert body.items() <= answer.body.items()
    if status == 200:
        assert sorted(answer.body["messageIds"]) == ["k58xyz789ghi012", "k59abc456def789"]


def test_every_cancel_sample_event_is_covered_and_regenerable():
    generated = sample_events()
    assert set(generated) == {
        "cancel-bearer.json",
        "cancel-cookie.json",
        "cancel-bad-body.json",
        "cancel-no-token.json",
    }
    for name, event in generated.items():
        committed = load_event(name)
        assert committed["headers"] == event["headers"]
        assert committed.get("cookies") == event.get("cookies")
        assert committed["body"] == event["body"]
