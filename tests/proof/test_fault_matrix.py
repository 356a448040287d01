"""Every AWS call of every function, failing every way AWS fails, under the clients' real retries.

For each case the fault is in force for the first invocation, then removed, and the invocation
is repeated as it would be in production (the user retries after a 503; Lambda retries the
same event after a raise) until it succeeds. Checked at every step:

- the HTTP function answers 200 or 503 with Retry-After, never 500; an event function raises
  on a fault (so that Lambda retries) and returns otherwise;
- a successful answer lists exactly the messages this invocation cancelled: each is cancelled
  with this request's `cancelRequestId`, and one whose write answer was lost is still listed;
- progress is kept: what was cancelled stays cancelled, by the same request; finished messages
  are never touched;
- a fault that botocore's retries absorb (transient) gives a success at once; one that outlasts
  them (persistent) gives a failure, and the retries converge: every selected message ends
  cancelled, listed by at most one successful answer, with a cancel event on the bus from the
  request that cancelled it, and no request publishes two events for a message (a PutEvents
  whose answer was lost and that botocore sent again aside).

A message cancelled by an invocation that then failed is never listed (the contract: a retry
reports only the rest); the table counts them per case.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from cancel_service import bulk
from cancel_service.handlers import bulk_cancel, execution_status, stop_agent
from cancel_service.models import utc_timestamp
from devstack.apigw import http_api_event
from devstack.clerk import SigningKey
from support.constants import (
    AGENT_NAME,
    AGENT_ROLE,
    AGENT_STATE_MACHINE_ARN,
    CANCEL_PATH,
    OWNER,
    PROJECT,
    STAND_IN_AGENT,
    TABLE_NAMES,
)
from support.events import eventbridge_event
from support.figures import record
from support.http_api import invoke
from support.http_faults import Fault, FaultPlan, Kind, by_request_id, install
from support.lambda_context import BudgetContext
from support.store import Store

pytestmark = pytest.mark.proof
# botocore's standard mode makes 4 attempts, adaptive mode (StopExecution) 10: this many
# failures in a row are absorbed by its retries.
STANDARD_ABSORBED = 3
ADAPTIVE_ABSORBED = 3
MAX_RETRIES = 3
EXECUTION_PREFIX = AGENT_STATE_MACHINE_ARN.replace(":stateMachine:", ":execution:") + ":"
CANCEL_SOURCE = "app.messages"
# What a cancel wrote; a later invocation may add to the message (agentStoppedAt), never change these.
CANCEL_FIELDS = ("status", "cancelledAt", "cancelledBy", "cancelReason", "cancelRequestId")
TITLE = "fault matrix: function, call, fault -> first outcome, convergence"

RETRIED = (Kind.THROTTLE, Kind.SERVER_ERROR, Kind.READ_TIMEOUT, Kind.CONNECT_TIMEOUT)
LOST = (Kind.LOST_RESPONSE_TIMEOUT, Kind.LOST_RESPONSE_5XX)


@dataclass(frozen=True)
class Case:
    function: str
    call: str
    kind: Kind
    attempts: int | None  # None: persistent
    after: int = 0
    per_item: bool = False

    def fault(self) -> Fault:
        return Fault(self.call, self.kind, self.attempts, self.after, self.per_item)

    @property
    def persistent(self) -> bool:
        return self.attempts is None

    @property
    def label(self) -> str:
        return f"{self.function} {self.fault().label}"


def _cases(
    function: str, calls: list[str], writes: set[str], absorbed: int, partial_after: int | None
) -> Iterator[Case]:
    for call in calls:
        for kind in RETRIED:
            yield Case(function, call, kind, absorbed)
            yield Case(function, call, kind, None)
        yield Case(function, call, Kind.ACCESS_DENIED, None)
        if call in writes:
            for kind in LOST:
                yield Case(function, call, kind, 1, per_item=True)
                yield Case(function, call, kind, None)
        if call.startswith("PutEvents"):
            yield Case(function, call, Kind.PARTIAL_BATCH, 1)
            yield Case(function, call, Kind.PARTIAL_BATCH, None)
        if call == "UpdateItem" and partial_after is not None:
            # Some of the parallel writes succeed, the others fail for good.
            yield Case(function, call, Kind.SERVER_ERROR, None, after=partial_after)
            yield Case(function, call, Kind.THROTTLE, None, after=partial_after)


WRITES = {"UpdateItem", "PutEvents app.messages", "PutEvents app.messages.bulk", "StopExecution"}
CANCEL_CASES = list(
    _cases(
        "CancelFunction",
        ["GetItem", "Query byProjectAndStatus", "PutEvents app.messages", "UpdateItem"],
        WRITES,
        STANDARD_ABSORBED,
        partial_after=5,
    )
)
BULK_CASES = list(
    _cases(
        "BulkCancelFunction",
        [
            "Query byOwner",
            "Query byProjectAndStatus",
            "Query byStatusAndUpdatedAt",
            "PutEvents app.messages",
            "UpdateItem",
            "PutEvents app.messages.bulk",
        ],
        WRITES,
        STANDARD_ABSORBED,
        partial_after=1,
    )
)
EXECUTION_CASES = list(
    _cases(
        "ExecutionStatusFunction",
        ["Query byExecutionArn", "PutEvents app.messages", "UpdateItem"],
        WRITES,
        STANDARD_ABSORBED,
        partial_after=None,
    )
)
STOP_CASES = list(_cases("StopAgentFunction", ["StopExecution"], WRITES, ADAPTIVE_ABSORBED, None))


def _id(case: Case) -> str:
    return case.fault().label.replace(" ", "-")


# --- the ledger: what each invocation cancelled and what it reported ------------------------------


@dataclass
class Ledger:
    """Follows one case's invocations: checks each one's report and events against the table."""

    store: Store
    plan: FaultPlan
    case: Case
    selected: set[str]
    untouched: dict[str, str]
    listed: Counter[str] = field(default_factory=Counter)
    unlisted: set[str] = field(default_factory=set)
    # Events a retried invocation published again under a request id that had already published
    # one for the message (Lambda delivers the same event again: same bulkId, same event id).
    republished: int = 0
    snapshot: dict[str, dict[str, str]] = field(default_factory=dict)
    published_mark: int = 0

    def messages(self) -> dict[str, dict[str, str]]:
        items = self.store.dynamodb.scan(TableName=TABLE_NAMES["MessagesTable"])["Items"]
        return {item["id"]["S"]: {name: value["S"] for name, value in item.items()} for item in items}

    def before(self) -> None:
        self.snapshot = self.messages()
        self.published_mark = len(self.plan.published_by(CANCEL_SOURCE))

    def after(self, request_id: str, succeeded: bool, reported: list[str] | None) -> None:
        now = self.messages()
        for message_id, status in self.untouched.items():
            assert now[message_id]["status"] == status, f"{message_id} was {status}, now {now[message_id]}"
        newly = set()
        for message_id, item in now.items():
            was = self.snapshot[message_id]
            if was["status"] == "cancelled":
                kept = {name: item.get(name) for name in CANCEL_FIELDS}
                assert kept == {name: was[name] for name in CANCEL_FIELDS}, f"progress lost: {message_id}"
            elif item["status"] == "cancelled":
                assert item["cancelRequestId"] == request_id, f"{message_id} cancelled by another request"
                newly.add(message_id)
        self._check_events(request_id)
        if succeeded:
            assert reported is not None
            _TOTALS["wrong answers"] += len(reported) != len(set(reported)) or set(reported) != newly
            assert len(reported) == len(set(reported)), f"a message listed twice: {reported}"
            assert set(reported) == newly, f"reported {sorted(reported)}, cancelled {sorted(newly)}"
            self.listed.update(reported)
        else:
            # An answer that says it failed may still list what it did cancel: never more.
            listed = set(reported or ())
            assert listed <= newly, f"listed {sorted(listed - newly)}, not cancelled by this call"
            self.listed.update(listed)
            self.unlisted |= newly - listed

    def _check_events(self, request_id: str) -> None:
        """One invocation publishes one event per message, unless botocore sent a PutEvents again
        because its answer was lost."""
        published = self.plan.published_by(CANCEL_SOURCE)
        earlier = by_request_id(published[: self.published_mark])[request_id]
        now = by_request_id(published[self.published_mark :])[request_id]
        resent = self.case.call == f"PutEvents {CANCEL_SOURCE}" and self.case.kind in LOST
        most = max(now.values(), default=0)
        assert resent or most <= 1, f"one invocation of {request_id} published {most} events for a message"
        self.republished += sum(1 for message_id in now if earlier[message_id])

    def converged(self) -> None:
        now = self.messages()
        for message_id in self.selected:
            assert now[message_id]["status"] == "cancelled", f"{message_id} left {now[message_id]['status']}"
        assert max(self.listed.values(), default=0) <= 1, f"listed more than once: {self.listed}"
        assert self.listed.keys() | self.unlisted == self.selected
        events = by_request_id(self.plan.published_by(CANCEL_SOURCE))
        for message_id in self.selected:
            request_id = now[message_id]["cancelRequestId"]
            assert events[request_id][message_id] >= 1, f"{message_id} cancelled without its event"


@dataclass(frozen=True)
class Invocation:
    request_id: str
    outcome: str  # "200", "503", "returned", "raised <exception>"
    reported: list[str] | None  # the message ids a successful invocation lists

    @property
    def succeeded(self) -> bool:
        return self.reported is not None


@dataclass
class Outcome:
    first: str
    retries: int
    unlisted: int = 0
    republished: int = 0

    def line(self, case: Case) -> str:
        lost = f", {self.unlisted} cancelled but never listed" if self.unlisted else ""
        if self.republished:
            lost += f", {self.republished} events published again by the retried event"
        retried = f"converged after {self.retries} retr{'y' if self.retries == 1 else 'ies'}"
        return f"{case.label} -> {self.first}, {retried}{lost}"


_TOTALS: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def totals() -> Iterator[None]:
    yield
    if not _TOTALS["cases"]:
        return
    record(
        TITLE,
        f"totals: cases {_TOTALS['cases']}, 500s: {_TOTALS['500']},"
        f" wrong 200s (or wrong lists of an event function): {_TOTALS['wrong answers']},"
        f" first invocation failed: {_TOTALS['failed first']},"
        f" messages cancelled but never listed: {_TOTALS['unlisted']} (in {_TOTALS['cases unlisted']} cases),"
        f" events published again by a retried event under its request id: {_TOTALS['republished']}",
    )


@pytest.fixture
def plan(monkeypatch: pytest.MonkeyPatch) -> FaultPlan:
    return install(monkeypatch)


def _conclude(case: Case, outcome: Outcome) -> None:
    """Count and print the case, then hold it to what its kind of fault must give."""
    _TOTALS["cases"] += 1
    failed_first = outcome.first not in ("200", "returned")
    _TOTALS["failed first"] += failed_first
    _TOTALS["unlisted"] += outcome.unlisted
    _TOTALS["cases unlisted"] += bool(outcome.unlisted)
    _TOTALS["republished"] += outcome.republished
    record(TITLE, outcome.line(case))
    if case.persistent:
        assert failed_first, "a fault outlasting the client's retries went unnoticed"
    else:
        assert not failed_first, "a fault the client's retries absorb failed the invocation"


def _retry_until_success(
    case: Case, plan: FaultPlan, ledger: Ledger, invoke_once: Callable[[int], Invocation]
) -> Outcome:
    """The first invocation under the fault, then, without it, retries until one succeeds."""
    first = ""
    for attempt in range(MAX_RETRIES + 1):
        ledger.before()
        if attempt == 0:
            with plan.arm(case.fault()):
                invocation = invoke_once(attempt)
        else:
            invocation = invoke_once(attempt)
        ledger.after(invocation.request_id, invocation.succeeded, invocation.reported)
        first = first or invocation.outcome
        if invocation.succeeded:
            return Outcome(first, attempt, len(ledger.unlisted), ledger.republished)
    raise AssertionError(f"no success after {MAX_RETRIES} retries without the fault")


# --- CancelFunction -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CANCEL_CASES, ids=_id)
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
        _TOTALS["500"] += answer.status >= 500 and answer.status != 503
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
    outcome = _retry_until_success(case, plan, ledger, stop)
    _conclude(case, outcome)
    ledger.converged()


# --- BulkCancelFunction ---------------------------------------------------------------------------

OWNER_A = "user_2bulkowner"
BULK_ID = "bulk-proof-1"
BULK_PAGE = 2
MAX_INVOCATIONS = 40


def _bulk_context() -> BudgetContext:
    """Room for two pages: the third is left to a continuation."""
    return BudgetContext(remaining_ms=bulk.SAFETY_MARGIN_MS + 8_000, step_ms=5_000)


@pytest.mark.parametrize("case", BULK_CASES, ids=_id)
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
    by_age = case.call == "Query byStatusAndUpdatedAt"
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
    _conclude(case, outcome)
    ledger.converged()


# --- ExecutionStatusFunction ----------------------------------------------------------------------


@pytest.mark.parametrize("case", EXECUTION_CASES, ids=_id)
def test_execution_status_function(case: Case, store: Store, plan: FaultPlan, lambda_context: Any) -> None:
    store.put_project()
    aborted = EXECUTION_PREFIX + "x1"
    store.put_message("x1", execution_arn=aborted)
    store.put_message("x2", execution_arn=EXECUTION_PREFIX + "x2")
    store.put_message("x3", status="completed", execution_arn=EXECUTION_PREFIX + "x3")
    stop_ms = int(datetime.now(UTC).timestamp() * 1000)
    event = eventbridge_event(
        "Step Functions Execution Status Change",
        {
            "executionArn": aborted,
            "stateMachineArn": AGENT_STATE_MACHINE_ARN,
            "status": "ABORTED",
            "startDate": stop_ms - 60_000,
            "stopDate": stop_ms,
        },
        source="aws.states",
    )

    def lambda_delivers(attempt: int) -> Invocation:
        # Lambda retries the very same event: its id is the request id every time.
        try:
            answer = execution_status.handler(event, lambda_context)
        except Exception as error:
            return Invocation(event["id"], f"raised {type(error).__name__}", None)
        return Invocation(event["id"], "returned", answer["cancelledIds"])

    ledger = Ledger(store, plan, case, {"x1"}, {"x2": "processing", "x3": "completed"})
    outcome = _retry_until_success(case, plan, ledger, lambda_delivers)
    _conclude(case, outcome)
    ledger.converged()


# --- StopAgentFunction ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", STOP_CASES, ids=_id)
def test_stop_agent_function(case: Case, store: Store, plan: FaultPlan, lambda_context: Any) -> None:
    # moto's executions stay RUNNING until stopped: enough here, and quicker than running them.
    sfn = boto3.client("stepfunctions")
    machine = sfn.create_state_machine(
        name=AGENT_NAME, definition=STAND_IN_AGENT.read_text(), roleArn=AGENT_ROLE
    )["stateMachineArn"]
    execution_arn = sfn.start_execution(stateMachineArn=machine, name="m1")["executionArn"]
    event = eventbridge_event(
        "Message Cancel Requested",
        {
            "messageId": "m1",
            "projectId": PROJECT,
            "conversationId": "conv_1",
            "executionArn": execution_arn,
            "requestedBy": OWNER,
            "reason": "user_request",
            "requestedAt": utc_timestamp(),
            "requestId": "http-1",
        },
        source=CANCEL_SOURCE,
    )
    batch = {"Records": [sqs_record(event)]}
    first = ""
    for attempt in range(MAX_RETRIES + 1):
        # A record reported failed is delivered again by the queue, as it is.
        if attempt == 0:
            with plan.arm(case.fault()):
                answer = stop_agent.handler(batch, lambda_context)
        else:
            answer = stop_agent.handler(batch, lambda_context)
        if answer["batchItemFailures"]:
            assert answer["batchItemFailures"] == [{"itemIdentifier": "record-1"}]
            first = first or "record failed"
            continue
        first = first or "returned"
        assert _status_within(sfn, execution_arn, "ABORTED") == "ABORTED"
        _conclude(case, Outcome(first, attempt))
        return
    raise AssertionError(f"the execution was not stopped after {MAX_RETRIES} retries without the fault")


def _status_within(sfn: Any, execution_arn: str, wanted: str, seconds: float = 5.0) -> str:
    """The execution's status once it is `wanted`, or as it is after `seconds`: a stop that
    succeeded shows in describe_execution a moment later when moto runs the executions."""
    deadline = time.monotonic() + seconds
    while (status := str(sfn.describe_execution(executionArn=execution_arn)["status"])) != wanted:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return status


def sqs_record(event: dict[str, Any]) -> dict[str, Any]:
    """One record of the stop queue, as Lambda's event source mapping hands it over."""
    return {
        "messageId": "record-1",
        "receiptHandle": "handle-1",
        "body": json.dumps(event),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:stop-requests",
        "awsRegion": "us-east-1",
    }


# --- refused inputs: no raise (a retry could never help), no AWS call -------------------------------


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


def test_stop_refuses_an_execution_of_another_state_machine_without_raising(
    store: Store, plan: FaultPlan, lambda_context: Any
) -> None:
    sfn = boto3.client("stepfunctions")
    other = sfn.create_state_machine(
        name="not-the-agent", definition=STAND_IN_AGENT.read_text(), roleArn=AGENT_ROLE
    )["stateMachineArn"]
    execution_arn = sfn.start_execution(stateMachineArn=other, name="m1")["executionArn"]
    event = eventbridge_event(
        "Message Cancel Requested",
        {
            "messageId": "m1",
            "projectId": PROJECT,
            "conversationId": "conv_1",
            "executionArn": execution_arn,
            "requestedBy": OWNER,
            "reason": "user_request",
            "requestedAt": utc_timestamp(),
            "requestId": "http-1",
        },
        source=CANCEL_SOURCE,
    )

    answer = stop_agent.handler({"Records": [sqs_record(event)]}, lambda_context)

    assert answer == {"batchItemFailures": []}, "a refused stop would be retried"
    assert plan.attempts["StopExecution"] == 0, "StopExecution called on another state machine's execution"
    assert sfn.describe_execution(executionArn=execution_arn)["status"] == "RUNNING"
