"""The scene of the session token tests: the owner's project with one processing message, and what
a refusal must look like (401, the contract's body, nothing changed, nothing published)."""

from __future__ import annotations

from support.http_api import Answer
from support.store import Store


def seed_token_scene(store: Store) -> Store:
    store.put_project()
    store.put_message("m1", execution_arn="arn:aws:states:us-east-1:123456789012:execution:agent:x")
    return store


def assert_refused(answer: Answer, scene: Store, *, token_sent: bool = True) -> None:
    assert answer.status == 401
    assert answer.body == {
        "success": False,
        "error": {"code": "unauthenticated", "message": "A valid session token is required."},
    }
    expected = 'Bearer error="invalid_token"' if token_sent else "Bearer"
    assert answer.headers["WWW-Authenticate"] == expected
    assert scene.status("m1") == "processing"
    assert scene.published() == []
