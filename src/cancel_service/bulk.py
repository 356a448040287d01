"""Bulk cancels: which messages a bulk selects, read page by page from indexes, each page
cancelled by the one cancel core, and the rest continued when the invocation runs out of time.

A continuation carries a cursor (the projects left and the next page's start key, or the age
cutoff and the next page's start key), so no page is read twice and no message reported twice;
a message cancelled meanwhile by someone else simply fails the core's conditional write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cancel_service.adapters.bulk_events import BulkContinuationPublisher
from cancel_service.adapters.messages import MessagesTable
from cancel_service.adapters.projects import ProjectsTable
from cancel_service.cancel import CancelService
from cancel_service.event_models import (
    BulkByProjects,
    BulkOlderThan,
    BulkSelection,
    OlderThanCursor,
    ProjectsCursor,
)
from cancel_service.models import CancelRequest, ProcessingMessage, utc_timestamp
from cancel_service.observability import logger

BULK_REQUESTER = "system:bulk"
# Messages read and cancelled per step: small enough that one step ends well within the margin.
PAGE_SIZE = 100
# Below this much remaining time no new page is started; the rest is handed to a continuation.
SAFETY_MARGIN_MS = 20_000

Cursor = ProjectsCursor | OlderThanCursor
# One page of messages to cancel, and where to resume after it (None: nothing left after it).
Step = tuple[tuple[ProcessingMessage, ...], Cursor | None]


@dataclass(frozen=True, slots=True)
class BulkProgress:
    cancelled_ids: tuple[str, ...]
    continued: bool


class BulkCancelService:
    def __init__(
        self,
        projects: ProjectsTable,
        messages: MessagesTable,
        cancel_service: CancelService,
        continuations: BulkContinuationPublisher,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._projects = projects
        self._messages = messages
        self._cancel_service = cancel_service
        self._continuations = continuations
        self._clock = clock

    def run(self, selection: BulkSelection, bulk_id: str, remaining_ms: Callable[[], int]) -> BulkProgress:
        """Cancel what the selection matches until done or time runs short, then continue it.

        At least one page is handled per invocation, so every continuation makes progress.
        """
        request = CancelRequest(
            request_id=bulk_id,
            requested_by=BULK_REQUESTER,
            reason=selection.reason,
            requested_at=utc_timestamp(self._clock()),
        )
        cancelled: list[str] = []
        for messages, resume_at in self._steps(selection):
            cancelled.extend(self._cancel_service.cancel(messages, request).cancelled_ids)
            if resume_at is not None and remaining_ms() < SAFETY_MARGIN_MS:
                continuation = selection.model_copy(update={"cursor": resume_at, "bulk_id": bulk_id})
                self._continuations.publish(continuation.model_dump(by_alias=True, exclude_none=True))
                logger.info("bulk continues in a new invocation", extra={"cancelled_count": len(cancelled)})
                return BulkProgress(tuple(cancelled), continued=True)
        return BulkProgress(tuple(cancelled), continued=False)

    def _steps(self, selection: BulkSelection) -> Iterator[Step]:
        if isinstance(selection, BulkOlderThan):
            return self._older_than_steps(selection)
        if selection.cursor is not None:
            return self._project_steps(selection.cursor)
        if isinstance(selection, BulkByProjects):
            project_ids = list(dict.fromkeys(selection.project_ids))
        else:
            project_ids = self._projects.ids_owned_by(selection.owner_id)
        return self._project_steps(ProjectsCursor(projectIds=project_ids) if project_ids else None)

    def _project_steps(self, cursor: ProjectsCursor | None) -> Iterator[Step]:
        while cursor is not None:
            project_id, *later = cursor.project_ids
            page = self._messages.processing_in_project_page(project_id, cursor.start_key, PAGE_SIZE)
            if page.next_key is not None:
                cursor = ProjectsCursor(projectIds=cursor.project_ids, startKey=page.next_key)
            else:
                cursor = ProjectsCursor(projectIds=later) if later else None
            yield page.messages, cursor

    def _older_than_steps(self, selection: BulkOlderThan) -> Iterator[Step]:
        # The cutoff is fixed once, so a continuation selects against the same moment.
        cursor: OlderThanCursor | None = selection.cursor or OlderThanCursor(
            cutoff=utc_timestamp(self._clock() - timedelta(seconds=selection.older_than_seconds))
        )
        while cursor is not None:
            page = self._messages.processing_updated_before_page(cursor.cutoff, cursor.start_key, PAGE_SIZE)
            next_cursor = (
                OlderThanCursor(cutoff=cursor.cutoff, startKey=page.next_key) if page.next_key else None
            )
            yield page.messages, next_cursor
            cursor = next_cursor
