"""The fault matrix of the bulk function: every call of a bulk and its continuations failing every
way AWS fails, then Lambda's retry of the event (what is checked: support/fault_ledger.py); and a
refused bulk, which neither raises nor calls AWS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cancel_service import bulk
from cancel_service.handlers import bulk_cancel
from cancel_service.models import utc_timestamp
from support.constants import (
    OWNER,
    PROJECT,
    TABLE_NAMES,
)
from support.events import eventbridge_event
from support.fault_cases import (
    BULK_CASES,
    CANCEL_SOURCE,
    Case,
    case_id,
)
from support.fault_ledger import (
    Ledger,
    Outcome,
    conclude,
)
from support.http_faults import FaultPlan
from support.lambda_context import BudgetContext
from support.store import Store

pytestmark = pytest.mark.proof
OWNER_A = "user_2bulkowner"
BULK_ID = "bulk-proof-1"
BULK_PAGE = 2
MAX_INVOCATIONS = 40


def _bulk_context() -> BudgetContext:
    """Room for two pages: the third is left to a continuation."""
    return BudgetContext(remaining_ms=bulk.SAFETY_MARGIN_MS + 8_000, step_ms=5_000)


@pytest.mark.parametrize("case", BULK_CASES, ids=case_id)
def test_bulk_cancel_function(
    case: Case, store: Store, plan: FaultPlan, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "PAGE_SIZE", BULK_PAGE)
    monkeypatch.setattr(bulk, "RETRY_DELAY_SECONDS", 0.0)  # the bulk's own retries, counted not slept
    long_ago = utc_timestamp(datetime.now(UTC) - timedelta(hours=2))
    selected: set[str] = set()
    for project_id in ("pa1", "pa2"):
        store.put_project(project_id, owner_id=OWNER_A)
        for n in range(3):
            message_id = f"{project_id}-m{n}"
            store.put_message(message_id, project_id=project_id, updated_at=long_ago)
            selected.add(message_id)
    store.put_project("pb1", owner_id="user_2another")
    store.put_message("pa1-done", project_id="pa1", status="completed", updated_at=long_ago)
    store.put_message("pa2-broke", project_id="pa2", status="failed", updated_at=long_ago)
    store.put_message("pb1-recent", project_id="pb1")  # another owner's, and not old
    store.dynamodb.update_item(
        TableName=TABLE_NAMES["MessagesTable"],
        Key={"id": {"S": "pb1-recent"}},
        UpdateExpression="SET updatedAt = :now",
        ExpressionAttributeValues={":now": {"S": utc_timestamp()}},
    )
    untouched = {"pa1-done": "completed", "pa2-broke": "failed", "pb1-recent": "processing"}
    by_age = case.call in ("Query byShardAndPosition", "BatchGetItem")  # the age index's reads
    detail = {"olderThanSeconds": 3600} if by_age else {"ownerId": OWNER_A}
    request = eventbridge_event("Bulk Cancel Requested", {**detail, "bulkId": BULK_ID}, source="app.admin")
    queue = [request]
    continuations_seen = 0
    ledger = Ledger(store, plan, case, selected, untouched)
    first = ""

    def run_next() -> bool:
        """Invoke the function on the next event; on a raise, keep the event for Lambda's retry."""
        nonlocal continuations_seen, first
        ledger.before()
        try:
            answer = bulk_cancel.handler(queue[0], _bulk_context())
        except Exception as error:
            ledger.after(BULK_ID, False, None)
            first = first or f"raised {type(error).__name__}"
            return False
        queue.pop(0)
        assert answer["accepted"] is True
        # A bulk that gave up reported it and ended (not retried by Lambda); like a 503, what it
        # lists may miss a write whose answer was lost, and its report says it failed.
        gave_up = answer.get("outcome") == "failed"
        ledger.after(BULK_ID, not gave_up, answer["messageIds"])
        if gave_up:
            first = "gave up" if first in ("", "returned") else first
            return False
        first = first or "returned"
        continuations = plan.published_by("app.messages.bulk")
        # The bus routes only the continuations back to the function, not a bulk's other events.
        queue.extend(
            eventbridge_event(entry.detail_type, entry.detail, source=entry.source)
            for entry in continuations[continuations_seen:]
            if entry.detail_type == "Bulk Cancel Requested"
        )
        continuations_seen = len(continuations)
        return True

    invocations = 0
    with plan.arm(case.fault()):
        while queue and invocations < MAX_INVOCATIONS:
            invocations += 1
            if not run_next():
                break
    # The event that raised is delivered again by Lambda, now with the fault gone; a bulk that
    # gave up is sent again by its operator.
    retries = 1 if first.startswith("raised") or first == "gave up" else 0
    if first == "gave up":
        queue.append(request)
    while queue and invocations < MAX_INVOCATIONS:
        invocations += 1
        assert run_next(), "an invocation failed with no fault in force"
    assert not queue, f"the bulk did not finish in {MAX_INVOCATIONS} invocations"
    outcome = Outcome(first, retries, len(ledger.unlisted), ledger.republished)
    conclude(case, outcome)
    ledger.converged()


@pytest.mark.parametrize(
    ("source", "detail"),
    [
        ("app.admin", {"projectIds": []}),
        ("app.admin", {"ownerId": OWNER, "olderThanSeconds": 3600}),
        ("app.admin", {"olderThanSeconds": 59}),
        # The contract: the function itself refuses a bulk published under the cancel events' source.
        (CANCEL_SOURCE, {"projectIds": [PROJECT]}),
    ],
    ids=["no-project", "two-shapes", "too-young", "from-app.messages"],
)
def test_bulk_cancel_refuses_without_raising_or_touching_anything(
    store: Store, plan: FaultPlan, source: str, detail: dict[str, Any]
) -> None:
    store.put_project()
    store.put_message("m1")
    before = dict(plan.attempts)

    answer = bulk_cancel.handler(
        eventbridge_event("Bulk Cancel Requested", detail, source=source), _bulk_context()
    )

    assert answer["accepted"] is False
    assert dict(plan.attempts) == before, "a refused bulk called AWS"
    assert store.status("m1") == "processing"
