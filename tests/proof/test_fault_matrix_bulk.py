"""The fault matrix of the bulk function: every call of a bulk and its continuations (its state
table's included) failing every way AWS fails, then Lambda's retry of the event; then every bulk
event of the run delivered again, twice (what is checked: support/fault_ledger.py: one report
per bulk, no message cancelled past a cap, reports' counts equal to the table's); and a refused
bulk, which neither raises nor calls AWS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cancel_service.core import bulk
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
    check_bulks,
    conclude,
)
from support.http_faults import FaultPlan
from support.lambda_context import BudgetContext
from support.store import Store

pytestmark = pytest.mark.proof
OWNER_A = "user_2bulkowner"
BULK_ID = "bulk-proof-1"
SECOND_BULK_ID = "bulk-proof-2"
CAP = 4  # of the six messages selected
BULK_PAGE = 2
MAX_INVOCATIONS = 40
LAMBDA_RETRY_AFTER_SECONDS = 180


def _bulk_context() -> BudgetContext:
    """Room for two pages: the third is left to a continuation."""
    return BudgetContext(remaining_ms=bulk.SAFETY_MARGIN_MS + 8_000, step_ms=5_000)


class _Later(datetime):
    """The bulk's clock once Lambda's retry comes: after the failed invocation's deadline (the
    function's timeout), when the lease it could not let go of has run out."""

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return datetime.now(tz) + timedelta(seconds=LAMBDA_RETRY_AFTER_SECONDS)


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
    # The first bulk stops at its cap; the operator's second one (another bulkId) takes the rest.
    caps: dict[str, int | None] = {BULK_ID: CAP, SECOND_BULK_ID: None}
    request = eventbridge_event(
        "Bulk Cancel Requested", {**detail, "bulkId": BULK_ID, "maxMessages": CAP}, source="app.admin"
    )
    queue = [request]
    invocations = 0
    delivered: list[dict[str, Any]] = []
    continuations_seen = 0
    ledger = Ledger(store, plan, case, selected, untouched)
    first = ""

    def run_next() -> bool:
        """Invoke the function on the next event; on a raise, keep the event for Lambda's retry."""
        nonlocal continuations_seen, first
        event = queue[0]
        bulk_id = event["detail"]["bulkId"]
        ledger.before()
        try:
            answer = bulk_cancel.handler(event, _bulk_context())
        except Exception as error:
            ledger.after(bulk_id, False, None)
            first = first or f"raised {type(error).__name__}"
            return False
        delivered.append(queue.pop(0))
        assert answer["accepted"] is True
        # A bulk that gave up reported it and ended (not retried by Lambda); like a 503, what it
        # lists may miss a write whose answer was lost, and its report says it failed.
        gave_up = answer.get("outcome") == "failed"
        ledger.after(bulk_id, not gave_up, answer["messageIds"])
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

    def run_all() -> None:
        nonlocal invocations
        while queue and invocations < MAX_INVOCATIONS:
            invocations += 1
            assert run_next(), "an invocation failed with no fault in force"

    with plan.arm(case.fault()):
        while queue and invocations < MAX_INVOCATIONS:
            invocations += 1
            if not run_next():
                break
    # The event that raised is delivered again by Lambda, now with the fault gone (and after the
    # failed invocation's deadline); a bulk that gave up stays ended.
    monkeypatch.setattr(bulk, "datetime", _Later)
    retries = 1 if first.startswith("raised") else 0
    if first == "gave up":
        queue.clear()
    run_all()
    # The operator's second bulk cancels what the first left (past its cap, or after it gave up).
    queue.append(
        eventbridge_event("Bulk Cancel Requested", {**detail, "bulkId": SECOND_BULK_ID}, source="app.admin")
    )
    run_all()
    assert not queue, f"the bulks did not finish in {MAX_INVOCATIONS} invocations"
    # Every bulk event of the run delivered again, twice (EventBridge's second delivery, a late
    # replay, the operator's same request again): none of them changes or reports anything.
    for event in delivered * 2:
        ledger.before()
        answer = bulk_cancel.handler(event, _bulk_context())
        ledger.after(event["detail"]["bulkId"], True, answer["messageIds"])
        assert (answer["messageIds"], answer.get("outcome")) == ([], None)
    outcome = Outcome(first, retries, len(ledger.unlisted), ledger.republished)
    conclude(case, outcome)
    ledger.converged()
    check_bulks(plan, ledger, caps)


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
