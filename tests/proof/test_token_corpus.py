"""Every kind of token the contract refuses, sent to the HTTP function: each is refused with the
exact answer of the contract and changes nothing (no event published, no message cancelled).

The genuine token is accepted in the same setting, so the corpus cannot pass by refusing all.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from devstack.apigw import http_api_event
from support.constants import CANCEL_PATH, PROJECT
from support.http_api import Answer, invoke
from support.store import Store
from support.token_corpus import ATTACKS, CONTROLS
from support.token_kit import PUBLISHABLE_KEY, Attack, Kit, Presented

pytestmark = pytest.mark.proof
PROCESSING = ("k58xyz789ghi012", "k59abc456def789")
REFUSED_401 = {
    "success": False,
    "error": {"code": "unauthenticated", "message": "A valid session token is required."},
}
REFUSED_403 = {
    "success": False,
    "error": {"code": "forbidden", "message": "This origin may not use the session cookie."},
}


@dataclass
class Tally:
    tried: int = 0
    accepted: list[str] = field(default_factory=list)
    controls: int = 0
    controls_accepted: int = 0


@pytest.fixture(scope="module")
def tally(request: pytest.FixtureRequest) -> Iterator[Tally]:
    counts = Tally()
    yield counts
    # Printed past pytest's capture, so the figures show in a normal run too.
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(
            f"\ntoken corpus: {counts.tried} attacks tried, {len(counts.accepted)} accepted"
            f" {counts.accepted}; {counts.controls_accepted}/{counts.controls} genuine controls accepted"
        )


@pytest.fixture
def scene(store: Store) -> Store:
    store.put_project()
    for message_id in PROCESSING:
        store.put_message(
            message_id, execution_arn=f"arn:aws:states:us-east-1:123456789012:execution:agent:{message_id}"
        )
    return store


def _send(
    case: Attack, kit: Kit, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> tuple[Presented, Answer]:
    if case.publishable_key:
        monkeypatch.setenv("CLERK_PUBLISHABLE_KEY", PUBLISHABLE_KEY)
    presented = case.presented(kit)
    event = http_api_event(
        "POST",
        CANCEL_PATH,
        headers={"content-type": "application/json", **presented.headers},
        body=json.dumps({"projectId": PROJECT}),
    )
    if presented.cookies:
        event["cookies"] = list(presented.cookies)
    return presented, invoke(event, lambda_context)


def _token_pieces(presented: Presented) -> list[str]:
    """The parts of what was presented long enough to be token text (not words of a message)."""
    text = " ".join([*presented.headers.values(), *presented.cookies])
    return [piece for piece in re.split(r"[\s.=,;\"]+", text) if len(piece) >= 16]


@pytest.mark.parametrize("case", ATTACKS, ids=[attack.name for attack in ATTACKS])
def test_attack_is_refused_and_changes_nothing(
    case, scene, mint, signing_key, lambda_context, monkeypatch, tally
):
    presented, answer = _send(case, Kit(mint, signing_key), lambda_context, monkeypatch)
    tally.tried += 1
    if answer.status == 200:
        tally.accepted.append(case.name)

    assert answer.status == case.status
    if case.status == 401:
        challenge = 'Bearer error="invalid_token"' if case.token_sent else "Bearer"
        assert answer.headers["WWW-Authenticate"] == challenge
        assert answer.body == REFUSED_401
    else:
        assert "WWW-Authenticate" not in answer.headers
        assert answer.body == REFUSED_403
    assert answer.headers["Cache-Control"] == "no-store"
    assert not any(piece in json.dumps(answer.body) for piece in _token_pieces(presented))
    assert scene.published() == []
    assert [scene.status(message_id) for message_id in PROCESSING] == ["processing"] * len(PROCESSING)


@pytest.mark.parametrize("case", CONTROLS, ids=[control.name for control in CONTROLS])
def test_genuine_token_is_accepted(case, scene, mint, signing_key, lambda_context, monkeypatch, tally):
    _, answer = _send(case, Kit(mint, signing_key), lambda_context, monkeypatch)
    tally.controls += 1
    tally.controls_accepted += answer.status == 200

    assert answer.status == 200
    assert sorted(answer.body["messageIds"]) == sorted(PROCESSING)
    assert len(scene.published()) == len(PROCESSING)


def test_corpus_is_large_and_names_are_distinct():
    names = [attack.name for attack in ATTACKS + CONTROLS]
    assert len(set(names)) == len(names)
    assert len(ATTACKS) >= 60
