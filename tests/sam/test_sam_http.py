"""The HTTP function the SAM way: `sam local invoke` of the cancel sample events and `sam local
start-api`, in Docker, against moto. Run alone with `pytest -m sam`."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from devstack.demo import DEMO_PROJECT
from support.constants import EVENTS, ROOT
from support.sam_local import (
    INVOKED_WITH,
    SamLocal,
    body_of,
    expect_cancelled,
    headers_of,
    seed_processing,
)
from support.store import Store

pytestmark = pytest.mark.sam


def test_every_sample_event_is_invoked_here() -> None:
    assert sorted(path.name for path in EVENTS.glob("*.json")) == sorted(INVOKED_WITH)


def test_no_token_is_401(sam_local: SamLocal) -> None:
    response = sam_local.invoke(INVOKED_WITH["cancel-no-token.json"], EVENTS / "cancel-no-token.json")
    assert response["statusCode"] == 401
    assert headers_of(response)["www-authenticate"] == "Bearer"
    assert body_of(response)["error"]["code"] == "unauthenticated"


def test_bad_body_is_400(sam_local: SamLocal) -> None:
    response = sam_local.invoke(INVOKED_WITH["cancel-bad-body.json"], EVENTS / "cancel-bad-body.json")
    assert response["statusCode"] == 400
    assert body_of(response)["error"]["code"] == "invalid_request"
    assert headers_of(response)["cache-control"] == "no-store"


@pytest.mark.parametrize("event", ["cancel-bearer.json", "cancel-cookie.json"])
def test_signed_in_owner_cancels_through_moto(sam_local: SamLocal, seeded: Store, event: str) -> None:
    ids = seed_processing(seeded)
    response = sam_local.invoke(INVOKED_WITH[event], EVENTS / event)
    assert response["statusCode"] == 200, response
    assert headers_of(response)["content-type"] == "application/json"
    expect_cancelled(seeded, body_of(response), ids)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_start_api_serves_the_cancel_route(sam_local: SamLocal, seeded: Store, tmp_path: Path) -> None:
    event = json.loads((EVENTS / "cancel-bearer.json").read_text())
    authorization = event["headers"]["authorization"]
    port = _free_port()
    log = tmp_path / "start-api.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [
                sam_local.sam_env.sam,
                "local",
                "start-api",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *sam_local.common_args(),
            ],
            cwd=ROOT,
            env=sam_local.sam_env.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}/api/messages/cancel"
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"sam local start-api did not listen:\n{log.read_text()[-3000:]}", pytrace=False
                    )
                time.sleep(0.2)

        def post(body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 - loopback
                    return answer.status, json.loads(answer.read())
            except urllib.error.HTTPError as error:
                return error.code, json.loads(error.read())

        status, body = post(
            json.dumps({"projectId": DEMO_PROJECT}).encode(), {"content-type": "application/json"}
        )
        assert (status, body["error"]["code"]) == (401, "unauthenticated")

        ids = seed_processing(seeded)
        status, body = post(
            json.dumps({"projectId": DEMO_PROJECT}).encode(),
            {"content-type": "application/json", "authorization": authorization},
        )
        assert status == 200, (body, log.read_text()[-3000:])
        expect_cancelled(seeded, body, ids)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
