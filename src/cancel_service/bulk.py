"""Bulk cancels: the pages a bulk selects (`bulk_selection`) each cancelled by the one cancel
core, continued when an invocation runs short of time, and reported once when the bulk ends.

A bulk is one chain of invocations. Each continuation is the rest of the selection with a
position inside it and the running totals, so no message is reported twice and the last
invocation knows the whole bulk's counts for its `Bulk Cancel Completed` report. A continuation
is handed off only once it fits in one event: a selection too large for that (a long project
list, nearly at EventBridge's limit) shrinks page by page until it does.

A dependency that keeps failing after the clients' and this module's retries makes the bulk give
up: it reports `failed` with the reason, and what it cancelled stays cancelled.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from cancel_service.adapters.age_index import AgeIndex
from cancel_service.adapters.bulk_events import BulkEventPublisher
from cancel_service.adapters.messages import MessagesTable
from cancel_service.adapters.projects import ProjectsTable
from cancel_service.bulk_selection import BulkPages
from cancel_service.cancel import CancelService
from cancel_service.errors import DependencyUnavailable
from cancel_service.event_models import BulkByOwner, BulkByProjects, BulkProgress, BulkSelection
from cancel_service.models import CancelRequest, ProcessingMessage, utc_timestamp
from cancel_service.observability import logger

BULK_REQUESTER = "system:bulk"
# Messages read and cancelled per step: small enough that one step ends well within the margin.
PAGE_SIZE = 100
# Below this much remaining time no new page is started; the rest is handed to a continuation.
SAFETY_MARGIN_MS = 20_000
# EventBridge's entry limit is 256 KB for source, detail type and detail together.
MAX_CONTINUATION_DETAIL_BYTES = 256 * 1024 - 1024
# A failing read is tried this often (after the client's own retries) before the bulk gives up.
READ_ATTEMPTS = 3
RETRY_DELAY_SECONDS = 1.0
# How many of a bulk's project ids its report names (the count is always there).
REPORTED_PROJECT_IDS = 20

Outcome = Literal["finished", "capped", "failed"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BulkRun:
    """What one invocation did: the messages it cancelled, and how the bulk goes on."""

    cancelled_ids: tuple[str, ...]
    continued: bool
    outcome: Outcome | None = None  # set when the bulk ended in this invocation


@dataclass
class _Totals:
    selected: int
    cancelled: int
    already_finished: int
    failed: int

    @classmethod
    def of(cls, progress: BulkProgress) -> _Totals:
        return cls(progress.selected, progress.cancelled, progress.already_finished, progress.failed)


@dataclass
class _Invocation:
    selection: BulkSelection
    progress: BulkProgress
    request: CancelRequest
    totals: _Totals
    cancelled_ids: list[str] = field(default_factory=list)

    def remaining_quota(self) -> int:
        """Messages the cap still allows in this bulk (counted as selected for a dry run)."""
        cap = self.selection.max_messages
        if cap is None:
            return PAGE_SIZE
        done = self.totals.selected if self.selection.dry_run else self.totals.cancelled
        return max(0, min(PAGE_SIZE, cap - done))

    def current_progress(self) -> BulkProgress:
        return self.progress.model_copy(
            update={
                "selected": self.totals.selected,
                "cancelled": self.totals.cancelled,
                "already_finished": self.totals.already_finished,
                "failed": self.totals.failed,
            }
        )


class BulkCancelService:
    def __init__(
        self,
        projects: ProjectsTable,
        messages: MessagesTable,
        ages: AgeIndex,
        cancel_service: CancelService,
        events: BulkEventPublisher,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._cancel_service = cancel_service
        self._events = events
        self._clock = clock
        self._sleep = sleep
        self._pages = BulkPages(projects, messages, ages, clock, self._retrying)

    def run(
        self,
        selection: BulkSelection,
        bulk_id: str,
        remaining_ms: Callable[[], int],
        *,
        continuation: bool,
    ) -> BulkRun:
        """Go on with the bulk until it ends or time runs short, then continue it or report it.

        `continuation`: the event is one of this service's own continuations (only those may
        carry a position). At least one page is handled per invocation, so every continuation
        makes progress. Raises InvalidBulkRequest for a position it may not honour.
        """
        selection = self._pages.checked(selection.model_copy(update={"bulk_id": bulk_id}), continuation)
        now = self._clock()
        progress = (
            selection.cursor.progress
            if selection.cursor is not None
            else BulkProgress(startedAt=utc_timestamp(now), selector=_selector(selection))
        )
        progress = progress.model_copy(update={"invocations": progress.invocations + 1})
        run = _Invocation(
            selection,
            progress,
            CancelRequest(
                request_id=bulk_id,
                requested_by=BULK_REQUESTER,
                reason=selection.reason,
                requested_at=utc_timestamp(now),
            ),
            _Totals.of(progress),
        )
        try:
            return self._go_on(run, remaining_ms)
        except DependencyUnavailable as error:
            logger.warning("bulk gives up", extra={"dependency": error.dependency})
            self._report(run, "failed", f"{error.dependency} unavailable")
            return BulkRun(tuple(run.cancelled_ids), continued=False, outcome="failed")

    def _go_on(self, run: _Invocation, remaining_ms: Callable[[], int]) -> BulkRun:
        for step in self._pages.steps(run.selection, run.remaining_quota):
            self._handle(step.messages, run)
            if run.remaining_quota() == 0:
                return self._ended(run, "capped")
            if step.rest is None:
                break
            if remaining_ms() < SAFETY_MARGIN_MS:
                detail = step.rest(run.current_progress()).model_dump(by_alias=True, exclude_none=True)
                if len(json.dumps(detail, separators=(",", ":"))) <= MAX_CONTINUATION_DETAIL_BYTES:
                    self._events.publish_continuation(detail)
                    logger.info("bulk continues in a new invocation", extra=_counts(run))
                    return BulkRun(tuple(run.cancelled_ids), continued=True)
                # Too large to hand off yet: each further page makes the rest smaller.
        return self._ended(run, "finished")

    def _ended(self, run: _Invocation, outcome: Outcome) -> BulkRun:
        self._report(run, outcome)
        return BulkRun(tuple(run.cancelled_ids), continued=False, outcome=outcome)

    def _handle(self, messages: Sequence[ProcessingMessage], run: _Invocation) -> None:
        """Cancel one page. Not retried here: the core's calls were retried already, and a second
        try would publish a second event for a message whose event was accepted (one request
        publishes one event per message)."""
        run.totals.selected += len(messages)
        if run.selection.dry_run:
            return
        try:
            result = self._cancel_service.cancel(messages, run.request)
        except DependencyUnavailable as error:
            self._count(run, error.cancelled_ids, error.already_finished_ids)
            run.totals.failed += len(messages) - len(error.cancelled_ids) - len(error.already_finished_ids)
            raise
        self._count(run, result.cancelled_ids, result.already_finished_ids)

    @staticmethod
    def _count(run: _Invocation, cancelled: tuple[str, ...], finished: tuple[str, ...]) -> None:
        run.cancelled_ids.extend(cancelled)
        run.totals.cancelled += len(cancelled)
        run.totals.already_finished += len(finished)

    def _retrying(self, read: Callable[[], T]) -> T:
        """A read, tried again after a pause while its dependency fails (reads change nothing)."""
        for attempt in range(READ_ATTEMPTS - 1):
            try:
                return read()
            except DependencyUnavailable:
                self._sleep(RETRY_DELAY_SECONDS * 2**attempt)
        return read()

    def _report(self, run: _Invocation, outcome: Outcome, error: str | None = None) -> None:
        progress = run.current_progress()
        report: dict[str, Any] = {
            "bulkId": run.request.request_id,
            "selector": progress.selector,
            "dryRun": run.selection.dry_run,
            "outcome": outcome,
            "selected": progress.selected,
            "cancelled": progress.cancelled,
            "alreadyFinished": progress.already_finished,
            "failed": progress.failed,
            "invocations": progress.invocations,
            "startedAt": progress.started_at,
            "finishedAt": utc_timestamp(self._clock()),
        }
        if error is not None:
            report["error"] = error
        self._events.publish_report(report)
        logger.info("bulk ended", extra={"outcome": outcome, **_counts(run)})


def _selector(selection: BulkSelection) -> dict[str, Any]:
    """What the bulk selects, for its report (a long project list is named in part)."""
    if isinstance(selection, BulkByProjects):
        ids = list(dict.fromkeys(selection.project_ids))
        return {"projectIds": ids[:REPORTED_PROJECT_IDS], "projectCount": len(ids)}
    if isinstance(selection, BulkByOwner):
        return {"ownerId": selection.owner_id}
    return {"olderThanSeconds": selection.older_than_seconds}


def _counts(run: _Invocation) -> dict[str, int]:
    return {
        "selected": run.totals.selected,
        "cancelled": run.totals.cancelled,
        "already_finished": run.totals.already_finished,
        "failed": run.totals.failed,
        "invocations": run.progress.invocations,
    }
