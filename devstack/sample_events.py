"""Writes events/*.json: the sample events for `sam local invoke` and the tests.

Their tokens are signed with the development key (devstack/dev-clerk-key.pem) and expire in
2099, so they verify wherever CLERK_JWT_KEY is the development public key (env.json, the local
stack) and nowhere else. Run `python -m devstack.sample_events` after changing a sample.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from devstack.apigw import http_api_event
from devstack.clerk import DEV_ORIGIN, SigningKey, session_claims
from devstack.constants import CANCEL_PATH, ROOT
from devstack.demo import DEMO_PROJECT, DEMO_USER

EVENTS_DIR = ROOT / "events"
_ISSUED = int(datetime(2026, 11, 24, 12, tzinfo=UTC).timestamp())
_EXPIRES = int(datetime(2099, 1, 1, tzinfo=UTC).timestamp())


def demo_token() -> str:
    claims = session_claims(DEMO_USER, session_id="sess_2demoSession000000000000", now=_ISSUED)
    claims["exp"] = _EXPIRES
    return SigningKey.development().sign(claims)


def _cancel(headers: dict[str, str], body: str) -> dict[str, Any]:
    return http_api_event(
        "POST",
        CANCEL_PATH,
        headers={"host": "localhost:3000", "user-agent": "sample-event", **headers},
        body=body,
        now=_ISSUED,
    )


def sample_events() -> dict[str, dict[str, Any]]:
    token = demo_token()
    json_body = json.dumps({"projectId": DEMO_PROJECT})
    content = {"content-type": "application/json"}
    return {
        "cancel-bearer.json": _cancel({**content, "authorization": f"Bearer {token}"}, json_body),
        "cancel-cookie.json": _cancel(
            {**content, "origin": DEV_ORIGIN, "cookie": f"__session={token}"}, json_body
        ),
        "cancel-bad-body.json": _cancel(
            {**content, "authorization": f"Bearer {token}"}, json.dumps({"projectId": "../other project"})
        ),
        "cancel-no-token.json": _cancel(content, json_body),
    }


def main() -> None:
    EVENTS_DIR.mkdir(exist_ok=True)
    for name, event in sample_events().items():
        (EVENTS_DIR / name).write_text(json.dumps(event, indent=2) + "\n")
        print(f"wrote events/{name}")


if __name__ == "__main__":
    main()
