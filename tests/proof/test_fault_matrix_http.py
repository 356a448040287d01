"""The fault matrix of the HTTP function: every call of a Stop failing every way AWS fails, then
the user's retries after a 503 until one succeeds (what is checked: support/fault_ledger.py)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from devstack.apigw import http_api_event
from devstack.clerk import SigningKey
from support.constants import (
    CANCEL_PATH,
    PROJECT,
)
from support.fault_cases import (
    CANCEL_CASES,
    EXECUTION_PREFIX,
    Case,
    case_id,
)
from support.fault_ledger import (
    TOTALS,
    Invocation,
    Ledger,
    conclude,
    retry_until_success,
)
from support.http_api import invoke
from support.http_faults import FaultPlan
from support.store import Store

pytestmark = pytest.mark.proof


@pytest.mark.parametrize("case", CANCEL_CASES, ids=case_id)
def test_cancel_function(
    case: Case,
    store: Store,
    plan: FaultPlan,
    mint: Any,
    signing_key: SigningKey,
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The key is configured, not fetched: token checks are not what this matrix is about.
    monkeypatch.setenv("CLERK_JWT_KEY", signing_key.public_pem())
    store.put_project()
    store.put_project("k57other", owner_id="user_2someoneelse")
    selected = {f"m{n:02}" for n in range(12)}
    for n, message_id in enumerate(sorted(selected)):
        arn = EXECUTION_PREFIX + message_id if n % 2 else None
        store.put_message(message_id, conversation_id=f"conv_{n % 3}", execution_arn=arn)
    untouched = {"done": "completed", "broke": "failed", "elsewhere": "processing"}
    store.put_message("done", status="completed")
    store.put_message("broke", status="failed")
    store.put_message("elsewhere", project_id="k57other")
    token = mint()

    def stop(attempt: int) -> Invocation:
        request_id = f"http-{attempt}-{uuid.uuid4()}"
        event = http_api_event(
            "POST",
            CANCEL_PATH,
            headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
            body=json.dumps({"projectId": PROJECT}),
        )
        event["requestContext"]["requestId"] = request_id
        answer = invoke(event, lambda_context)
        TOTALS["500"] += answer.status >= 500 and answer.status != 503
        assert answer.status in (200, 503), answer
        if answer.status == 503:
            assert answer.headers.get("Retry-After"), answer
            assert answer.body["error"]["code"] == "unavailable"
            return Invocation(request_id, "503", None)
        reported = answer.body.get("messageIds", [])
        assert answer.body["cancelled"] is bool(reported)
        assert ("messageIds" in answer.body) is bool(reported)
        return Invocation(request_id, "200", reported)

    ledger = Ledger(store, plan, case, selected, untouched)
    outcome = retry_until_success(case, plan, ledger, stop)
    conclude(case, outcome)
    ledger.converged()
