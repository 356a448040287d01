"""Bulk cancels: the pages a bulk selects (`bulk_selection`) each cancelled by the one cancel
core, continued when an invocation runs short of time, and reported once when the bulk ends.

A bulk happens once per `bulkId`. Its state lives in the bulk state table (`adapters.bulk_state`):
the request, the link of its chain of invocations, where its next page starts, its totals, the
page whose cancels are in flight, and its report. Every invocation, whatever brought it (the
request, Lambda's retry, EventBridge's second delivery, an operator sending the request again, a
continuation, an old continuation replayed), first claims the bulk's current link there: an event
of a link that is done changes nothing, and neither does a request with another selection under
a known id. What a failed invocation left half done is finished by the next one: the page in
flight is read back by its keys and counted as it is; a continuation or a report recorded but
not yet accepted by EventBridge is put again, the same event (never a second, different one).

The totals and the selector of the report come from the state, never from an event. The cap is
a ceiling: a page never asks for more messages than the cap still allows (none: the bulk is
capped before it reads). A dry run counts its whole selection, past its cap (it changes
nothing), and reports `capped` when a real run would stop at the cap. A continuation names only
the link it is and where it resumes, so it is small whatever the size of the selection, and is
handed off before the safety margin.

A dependency that keeps failing while the bulk reads or cancels makes it give up: it reports
`failed` with the reason, and what it cancelled stays cancelled. When the state table or
EventBridge fails to take the bulk's own records (its state, continuation or report), the
invocation fails for Lambda to retry it.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from pydantic import TypeAdapter

from cancel_service.core.bulk_selection import BulkPages, OwnedProjects, Page, ProjectMessages, StaleMessages
from cancel_service.core.cancel import CancelResult, CancelService
from cancel_service.errors import (
    BulkIdInUse,
    BulkIdTaken,
    DependencyUnavailable,
    InvalidBulkRequest,
    LeaseLost,
    StateUnavailable,
)
from cancel_service.event_models import (
    AgePosition,
    BulkByProjects,
    BulkProgress,
    BulkReport,
    BulkSelection,
    BulkState,
    Outcome,
    Position,
    ProjectsPosition,
)
from cancel_service.models import (
    CANCELLED,
    PROCESSING,
    CancelRequest,
    ExecutionMessage,
    ProcessingMessage,
    utc_timestamp,
)
from cancel_service.observability import logger

BULK_REQUESTER = "system:bulk"
# Messages read and cancelled per page: small enough that one page ends well within the margin.
PAGE_SIZE = 100
# Below this much remaining time no new page is started; the rest is handed to a continuation.
SAFETY_MARGIN_MS = 20_000
# How many of the projects left a continuation of a bulk over projects names (the bulk's state
# holds them all): the continuation stays small whatever the size of the request.
CONTINUATION_PROJECT_IDS = 20
# A failing read is tried this often (after the client's own retries) before the bulk gives up.
READ_ATTEMPTS = 3
RETRY_DELAY_SECONDS = 1.0

T = TypeVar("T")
_SELECTION: TypeAdapter[BulkSelection] = TypeAdapter(BulkSelection)


class BulkMessages(ProjectMessages, Protocol):
    def current(self, message_ids: Sequence[str]) -> dict[str, ExecutionMessage]: ...


class BulkEvents(Protocol):
    """Where a bulk's continuations and report go; each raises DependencyUnavailable unless it
    was accepted."""

    def publish_continuation(self, continuation: BulkSelection) -> None: ...

    def publish_report(self, report: BulkReport) -> None: ...


class BulkStates(Protocol):
    """The bulk state table (`adapters.bulk_state`): its writes are conditional; one made without
    the lease raises LeaseLost, a failed call StateUnavailable."""

    def get(self, bulk_id: str) -> BulkState | None: ...

    def request(self, bulk_id: str) -> dict[str, Any]: ...

    def create(self, state: BulkState, request: dict[str, Any], expires_at: int) -> BulkState: ...

    def claim(self, state: BulkState, token: str, until: str, now: str) -> bool: ...

    def save(
        self,
        bulk_id: str,
        token: str,
        position: Position | None,
        progress: BulkProgress,
        pending: tuple[str, ...],
    ) -> None: ...

    def hand_off(
        self, bulk_id: str, token: str, link: int, position: Position, progress: BulkProgress
    ) -> None: ...

    def end(self, bulk_id: str, token: str, report: BulkReport) -> None: ...

    def mark_handed_off(self, bulk_id: str, link: int) -> None: ...

    def mark_reported(self, bulk_id: str) -> None: ...

    def release(self, bulk_id: str, token: str) -> None: ...


@dataclass(frozen=True, slots=True)
class BulkRun:
    """What one invocation did: the messages it cancelled, and how the bulk goes on."""

    cancelled_ids: tuple[str, ...]
    continued: bool
    outcome: Outcome | None = None  # set when the bulk ended in this invocation
    skipped: str | None = None  # why this invocation had nothing to do


def request_digest(request: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def new_bulk_state(selection: BulkSelection, bulk_id: str, now: datetime) -> BulkState:
    """A bulk's state as it starts: link 0 at the selection's first page, nothing done, no lease."""
    return BulkState(
        bulk_id=bulk_id,
        digest=request_digest(selection.request()),
        selector=selection.selector(),
        started_at=utc_timestamp(now),
        link=0,
        position=BulkPages.start(selection, now),
        progress=BulkProgress(),
        pending=(),
        handed_off=True,
        report=None,
        reported=False,
        lease=None,
        lease_until=None,
    )


@dataclass
class LeasedBulk:
    """A bulk while this invocation holds its lease: the state it claimed, the selection it works
    on, and what it has done so far (written back to the state after every page)."""

    state: BulkState
    token: str
    selection: BulkSelection
    position: Position | None
    progress: BulkProgress
    pending: tuple[str, ...] = ()
    cancelled_ids: list[str] = field(default_factory=list)

    @property
    def bulk_id(self) -> str:
        return self.state.bulk_id

    def quota(self) -> int:
        """Messages the next page may take: what the cap still allows, never more than a page. A
        dry run counts its whole selection, past the cap, so that it sizes what a cap leaves."""
        cap = self.selection.max_messages
        if cap is None or self.selection.dry_run:
            return PAGE_SIZE
        return max(0, min(PAGE_SIZE, cap - self.progress.cancelled))

    def outcome_at_end_of_selection(self) -> Outcome:
        """`capped` for a dry run that selected more than its cap: the bulk it tries would stop
        at the cap."""
        cap = self.selection.max_messages
        over_cap = self.selection.dry_run and cap is not None and self.progress.selected > cap
        return "capped" if over_cap else "finished"

    def take(self, page: Page) -> None:
        """The page is read: its messages are selected (and in flight, unless a dry run)."""
        self.position = page.next
        self.pending = () if self.selection.dry_run else tuple(m.id for m in page.messages)
        self._add(selected=len(page.messages), failed=len(page.unreadable))

    def settle(self, cancelled: tuple[str, ...], finished: tuple[str, ...], failed: int = 0) -> None:
        """The page in flight is done: these were cancelled, these had finished, so many failed."""
        self.cancelled_ids.extend(cancelled)
        self.pending = ()
        self._add(cancelled=len(cancelled), already_finished=len(finished), failed=failed)

    def _add(self, **counts: int) -> None:
        self.progress = self.progress.model_copy(
            update={name: getattr(self.progress, name) + value for name, value in counts.items()}
        )


class BulkCancelService:
    def __init__(
        self,
        projects: OwnedProjects,
        messages: BulkMessages,
        ages: StaleMessages,
        cancel_service: CancelService,
        events: BulkEvents,
        states: BulkStates,
        *,
        retention_seconds: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._messages = messages
        self._cancel_service = cancel_service
        self._events = events
        self._states = states
        self._retention_seconds = retention_seconds
        self._clock = clock
        self._sleep = sleep
        self._pages = BulkPages(projects, messages, ages, self._retrying)

    def run(
        self,
        selection: BulkSelection,
        bulk_id: str,
        remaining_ms: Callable[[], int],
        *,
        continuation: bool,
    ) -> BulkRun:
        """Do the bulk's next link, if this event is it: until the bulk ends or time runs short,
        then report it or hand it to a continuation.

        `continuation`: the event is one of this service's own continuations (only those may
        carry a position). Raises InvalidBulkRequest for an event that may not go on (BulkIdInUse
        for a known id with another selection), DependencyUnavailable when the bulk's own records
        could not be kept (for Lambda to retry)."""
        if selection.cursor is not None and not continuation:
            raise InvalidBulkRequest("a position is honoured only on the service's own continuations")
        deadline = self._clock() + timedelta(milliseconds=remaining_ms())
        state, stored = self._bulk_of(selection, bulk_id, continuation)
        link = selection.cursor.link if selection.cursor is not None else 0
        if state.report is not None:
            if not state.reported:
                self._publish_report(state.report)
            return BulkRun((), continued=False, skipped="the bulk has ended")
        if link < state.link:
            if not state.handed_off:
                self._publish_continuation(state, stored)
            return BulkRun((), continued=False, skipped="this link of the bulk is done")
        if link > state.link:
            raise InvalidBulkRequest("the continuation names a link the bulk has not reached")
        token = uuid.uuid4().hex
        if not self._states.claim(state, token, utc_timestamp(deadline), utc_timestamp(self._clock())):
            return BulkRun((), continued=False, skipped="another invocation works on this link")
        leased = LeasedBulk(
            state,
            token,
            stored,
            state.position,
            state.progress.model_copy(update={"invocations": state.progress.invocations + 1}),
            state.pending,
        )
        try:
            return self._work_until_end_or_hand_off(leased, remaining_ms)
        except LeaseLost:
            logger.warning("bulk lease lost to another invocation; stopping")
            return BulkRun(tuple(leased.cancelled_ids), continued=False, skipped="the lease ran out")
        except BaseException:
            self._release(leased)
            raise

    def _bulk_of(
        self, selection: BulkSelection, bulk_id: str, continuation: bool
    ) -> tuple[BulkState, BulkSelection]:
        """The state of the event's bulk (started by a request it does not know yet) and the
        selection it works on (the request as sent, whatever a continuation names of it)."""
        state = self._states.get(bulk_id)
        if state is None:
            if continuation:
                raise InvalidBulkRequest("the continuation names a bulk this service does not know")
            state = self._start(selection, bulk_id)
        if selection.cursor is None:
            if request_digest(selection.request()) != state.digest:
                raise BulkIdInUse("the bulkId is known with another selection")
            return state, selection
        stored = _SELECTION.validate_python(self._states.request(bulk_id))
        _check_continuation(selection, stored, state)
        return state, stored

    def _start(self, selection: BulkSelection, bulk_id: str) -> BulkState:
        now = self._clock()
        state = new_bulk_state(selection, bulk_id, now)
        expires_at = int(now.timestamp()) + self._retention_seconds
        try:
            return self._states.create(state, selection.request(), expires_at)
        except BulkIdTaken:
            raise BulkIdInUse("the bulkId is known with another selection") from None

    def _work_until_end_or_hand_off(self, leased: LeasedBulk, remaining_ms: Callable[[], int]) -> BulkRun:
        ended = self._work(leased, remaining_ms)
        if ended is None:
            return self._hand_off(leased)
        return self._end(leased, *ended)

    def _work(self, leased: LeasedBulk, remaining_ms: Callable[[], int]) -> tuple[Outcome, str | None] | None:
        """Page after page until the bulk ends (how, and why it failed) or time runs short (None);
        at least one page per invocation, so that every continuation makes progress."""
        request = CancelRequest(
            request_id=leased.bulk_id,
            requested_by=BULK_REQUESTER,
            reason=leased.selection.reason,
            requested_at=utc_timestamp(self._clock()),
        )
        pages = 0
        try:
            if leased.pending:
                self._settle_page_in_flight(leased, request)
            while True:
                if leased.selection.max_messages is not None and leased.quota() == 0:
                    return "capped", None
                if leased.position is None:
                    return leased.outcome_at_end_of_selection(), None
                if pages and remaining_ms() < SAFETY_MARGIN_MS:
                    return None
                page = self._pages.page(leased.selection, leased.position, leased.quota())
                leased.take(page)
                if page.messages or page.unreadable:
                    # The page and the totals before it, recorded before anything is cancelled.
                    # (An empty page is not: reading it again changes nothing.)
                    self._save(leased)
                if leased.pending:
                    self._cancel_page(leased, page, request)
                pages += 1
        except StateUnavailable:
            raise
        except DependencyUnavailable as error:
            logger.warning("bulk gives up", extra={"dependency": error.dependency})
            return "failed", f"{error.dependency} unavailable"

    def _cancel_page(self, leased: LeasedBulk, page: Page, request: CancelRequest) -> None:
        """Cancel one page and record it. Not retried here: the core's calls were retried
        already, and a second try would publish a second event for a message whose event was
        accepted (one request publishes one event per message)."""
        self._cancel_or_give_up(leased, page.messages, request)

    def _cancel_or_give_up(
        self, leased: LeasedBulk, messages: Sequence[ProcessingMessage], request: CancelRequest
    ) -> None:
        """Cancel these messages and count them; when the core fails, count what it could not
        tell (a write whose answers were all lost) as the table has it, then give up."""
        try:
            result = self._cancel_service.cancel(messages, request)
        except DependencyUnavailable as error:
            told = set(error.cancelled_ids) | set(error.already_finished_ids)
            untold = [message.id for message in messages if message.id not in told]
            self._settle(leased, self._as_the_table_has_them(leased, error, untold), len(messages))
            raise
        self._settle(leased, result, len(messages))

    def _as_the_table_has_them(
        self, leased: LeasedBulk, error: DependencyUnavailable, untold: list[str]
    ) -> CancelResult:
        """The core's partial result, with the messages it could not tell read back: cancelled by
        this bulk, or finished meanwhile (one still processing, or unread, is failed)."""
        try:
            now = self._messages.current(untold) if untold else {}
        except DependencyUnavailable:
            now = {}
        cancelled = tuple(m for m in untold if m in now and _cancelled_by(now[m], leased.bulk_id))
        finished = tuple(m for m in untold if m in now and now[m].status != PROCESSING and m not in cancelled)
        return CancelResult(error.cancelled_ids + cancelled, error.already_finished_ids + finished)

    @staticmethod
    def _settle(leased: LeasedBulk, result: CancelResult, of: int) -> None:
        """Count the page's outcome; it is recorded with the next page, the hand-off or the end
        (until then, the page is still in flight in the state, and settled again after a crash)."""
        done = len(result.cancelled_ids) + len(result.already_finished_ids)
        leased.settle(result.cancelled_ids, result.already_finished_ids, failed=of - done)

    def _settle_page_in_flight(self, leased: LeasedBulk, request: CancelRequest) -> None:
        """A failed invocation left a page in flight: each of its messages is read back by its
        key. One this bulk cancelled counts as cancelled; one still processing is cancelled now;
        any other finished meanwhile (or is gone, or unreadable: failed)."""
        pending = leased.pending
        now = self._retrying(lambda: self._messages.current(pending))
        cancelled_before = tuple(m for m in pending if m in now and _cancelled_by(now[m], leased.bulk_id))
        processing = [
            now[message_id].message
            for message_id in pending
            if message_id in now and now[message_id].status == PROCESSING
        ]
        missing = sum(1 for message_id in pending if message_id not in now)
        finished = len(pending) - len(cancelled_before) - len(processing) - missing
        leased.progress = leased.progress.model_copy(
            update={
                "cancelled": leased.progress.cancelled + len(cancelled_before),
                "already_finished": leased.progress.already_finished + finished,
                "failed": leased.progress.failed + missing,
            }
        )
        if processing:
            leased.pending = tuple(message.id for message in processing)
            self._cancel_or_give_up(leased, processing, request)
        else:
            leased.pending = ()

    def _save(self, leased: LeasedBulk) -> None:
        self._states.save(leased.bulk_id, leased.token, leased.position, leased.progress, leased.pending)

    def _hand_off(self, leased: LeasedBulk) -> BulkRun:
        position = leased.position
        assert position is not None, "nothing is handed off once the selection is done"
        link = leased.state.link + 1
        handed = replace(
            leased.state,
            link=link,
            position=position.model_copy(update={"link": link}),
            progress=leased.progress,
        )
        self._states.hand_off(
            leased.bulk_id, leased.token, link, position.model_copy(update={"link": link}), leased.progress
        )
        self._publish_continuation(handed, leased.selection)
        logger.info("bulk continues in a new invocation", extra=_counts(leased.progress))
        return BulkRun(tuple(leased.cancelled_ids), continued=True)

    def _end(self, leased: LeasedBulk, outcome: Outcome, error: str | None = None) -> BulkRun:
        report = BulkReport(
            bulkId=leased.bulk_id,
            selector=leased.state.selector,
            dryRun=leased.selection.dry_run,
            outcome=outcome,
            startedAt=leased.state.started_at,
            finishedAt=utc_timestamp(self._clock()),
            error=error,
            **leased.progress.model_dump(),
        )
        self._states.end(leased.bulk_id, leased.token, report)
        self._publish_report(report)
        logger.info("bulk ended", extra={"outcome": outcome, **_counts(report)})
        return BulkRun(tuple(leased.cancelled_ids), continued=False, outcome=outcome)

    def _publish_report(self, report: BulkReport) -> None:
        """Put the recorded report (again, the same event, when an earlier put was not known to
        be accepted), then record that it went out."""
        self._events.publish_report(report)
        self._states.mark_reported(report.bulk_id)

    def _publish_continuation(self, state: BulkState, selection: BulkSelection) -> None:
        """Put the continuation the state records for its current link (the same event again
        when an earlier put was not known to be accepted), then record that it went out."""
        position = state.position
        assert position is not None, "a continuation has a position"
        cursor = position.model_copy(update={"link": state.link, "progress": state.progress})
        update: dict[str, Any] = {"bulk_id": state.bulk_id, "cursor": cursor}
        if isinstance(selection, BulkByProjects) and isinstance(cursor, ProjectsPosition):
            start = cursor.index
            update["project_ids"] = selection.distinct_project_ids()[start : start + CONTINUATION_PROJECT_IDS]
            update["cursor"] = cursor.model_copy(update={"index": 0})
        self._events.publish_continuation(selection.model_copy(update=update))
        self._states.mark_handed_off(state.bulk_id, state.link)

    def _release(self, leased: LeasedBulk) -> None:
        try:
            self._states.release(leased.bulk_id, leased.token)
        except DependencyUnavailable:
            logger.warning("bulk lease not released; it runs out at the invocation's deadline")

    def _retrying(self, read: Callable[[], T]) -> T:
        """A read, tried again after a pause while its dependency fails (reads change nothing)."""
        for attempt in range(READ_ATTEMPTS - 1):
            try:
                return read()
            except DependencyUnavailable:
                self._sleep(RETRY_DELAY_SECONDS * 2**attempt)
        return read()


def _check_continuation(selection: BulkSelection, stored: BulkSelection, state: BulkState) -> None:
    """The continuation is of the bulk the state holds: it names only what the bulk selects
    (its projects, its age cutoff)."""
    if type(selection) is not type(stored):
        raise BulkIdInUse("the continuation's selection is not its bulk's")
    if isinstance(selection, BulkByProjects) and isinstance(stored, BulkByProjects):
        if not set(selection.project_ids) <= set(stored.project_ids):
            raise InvalidBulkRequest("the continuation names projects its bulk does not select")
        same = {**selection.request(), "projectIds": None} == {**stored.request(), "projectIds": None}
    else:
        same = selection.request() == stored.request()
    if not same:
        raise BulkIdInUse("the continuation's selection is not its bulk's")
    cursor, position = selection.cursor, state.position
    if (
        isinstance(cursor, AgePosition)
        and isinstance(position, AgePosition)
        and cursor.cutoff != position.cutoff
    ):
        raise InvalidBulkRequest("the position's cutoff is not its bulk's")


def _cancelled_by(message: ExecutionMessage, bulk_id: str) -> bool:
    return message.status == CANCELLED and message.cancel_request_id == bulk_id


def _counts(progress: BulkProgress) -> dict[str, int]:
    return progress.model_dump()
