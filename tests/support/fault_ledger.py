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
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from support.constants import (
    TABLE_NAMES,
)
from support.fault_cases import CANCEL_SOURCE, LOST, Case
from support.figures import record
from support.http_faults import FaultPlan, by_request_id
from support.store import Store

MAX_RETRIES = 3


# What a cancel wrote; a later invocation may add to the message (agentStoppedAt), never change these.
CANCEL_FIELDS = ("status", "cancelledAt", "cancelledBy", "cancelReason", "cancelRequestId")
TITLE = "fault matrix: function, call, fault -> first outcome, convergence"


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
            TOTALS["wrong answers"] += len(reported) != len(set(reported)) or set(reported) != newly
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


TOTALS: Counter[str] = Counter()
# The bulks of the bulk function's cases: how many, and what each one's report said against the table.
BULK_TOTALS: Counter[str] = Counter()


def check_bulks(plan: FaultPlan, ledger: Ledger, caps: dict[str, int | None]) -> None:
    """Each bulk of a case (by bulkId, with its cap) published one report (the same event put
    again after a lost answer is that one report), cancelled no message past its cap, and
    reported the table's count of the messages it cancelled."""
    now = ledger.messages()
    for bulk_id, cap in caps.items():
        reports = {
            json.dumps(entry.detail, sort_keys=True)
            for entry in plan.published_by("app.messages.bulk")
            if entry.detail_type == "Bulk Cancel Completed" and entry.detail["bulkId"] == bulk_id
        }
        in_table = sum(1 for item in now.values() if item.get("cancelRequestId") == bulk_id)
        past_cap = max(0, in_table - cap) if cap is not None else 0
        differing = sum(abs(json.loads(report)["cancelled"] - in_table) for report in reports)
        BULK_TOTALS["bulks"] += 1
        BULK_TOTALS[f"bulks with {len(reports)} reports"] += 1
        BULK_TOTALS["cancelled past a cap"] += past_cap
        BULK_TOTALS["counts differing from the table"] += differing
        assert len(reports) == 1, f"bulk {bulk_id} published {len(reports)} reports: {sorted(reports)}"
        assert past_cap == 0, f"bulk {bulk_id} cancelled {past_cap} past its cap {cap}"
        assert differing == 0, f"bulk {bulk_id} reported {sorted(reports)}, the table says {in_table}"


def bulk_totals_line() -> str:
    reports = ", ".join(
        f"{name.removeprefix('bulks with ')}: {count}"
        for name, count in sorted(BULK_TOTALS.items())
        if name.startswith("bulks with ")
    )
    return (
        f"bulks: {BULK_TOTALS['bulks']}, reports per bulk ({reports}),"
        f" messages cancelled past a cap: {BULK_TOTALS['cancelled past a cap']},"
        f" report counts differing from the table: {BULK_TOTALS['counts differing from the table']}"
    )


def totals_line() -> str:
    return (
        f"totals: cases {TOTALS['cases']}, 500s: {TOTALS['500']},"
        f" wrong 200s (or wrong lists of an event function): {TOTALS['wrong answers']},"
        f" first invocation failed: {TOTALS['failed first']},"
        f" messages cancelled but never listed: {TOTALS['unlisted']} (in {TOTALS['cases unlisted']} cases),"
        f" events published again by a retried event under its request id: {TOTALS['republished']}"
    )


def conclude(case: Case, outcome: Outcome) -> None:
    """Count and print the case, then hold it to what its kind of fault must give."""
    TOTALS["cases"] += 1
    failed_first = outcome.first not in ("200", "returned")
    TOTALS["failed first"] += failed_first
    TOTALS["unlisted"] += outcome.unlisted
    TOTALS["cases unlisted"] += bool(outcome.unlisted)
    TOTALS["republished"] += outcome.republished
    record(TITLE, outcome.line(case))
    if case.persistent:
        assert failed_first, "a fault outlasting the client's retries went unnoticed"
    else:
        assert not failed_first, "a fault the client's retries absorb failed the invocation"


def retry_until_success(
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
