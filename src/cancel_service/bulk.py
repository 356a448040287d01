"""Bulk cancels: which messages a bulk selects, read page by page from indexes, each page
cancelled by the one cancel core, and the rest continued when the invocation runs out of time.

A continuation is the selection narrowed to what is left (the projects left, or the age cutoff
fixed by the first invocation) plus a position inside it (the next page's start key), so no page
is read twice and no message reported twice; a message cancelled meanwhile by someone else simply
fails the core's conditional write. A position is honoured only on the service's own
continuations and only where it narrows the selection: anything else is refused, not retried.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cancel_service.adapters.bulk_events import BulkContinuationPublisher
from cancel_service.adapters.messages import MessagesTable, PageKey
from cancel_service.adapters.projects import ProjectsTable
from cancel_service.cancel import CancelService
from cancel_service.errors import InvalidBulkRequest
from cancel_service.event_models import (
    AgePageKey,
    AgePosition,
    BulkByOwner,
    BulkByProjects,
    BulkOlderThan,
    BulkSelection,
    OwnerPosition,
    ProjectPageKey,
    ProjectsPosition,
    page_key,
)
from cancel_service.models import CancelRequest, ProcessingMessage, utc_timestamp
from cancel_service.observability import logger

BULK_REQUESTER = "system:bulk"
# Messages read and cancelled per step: small enough that one step ends well within the margin.
PAGE_SIZE = 100
# Below this much remaining time no new page is started; the rest is handed to a continuation.
SAFETY_MARGIN_MS = 20_000
# A continuation's detail stays well under EventBridge's 256 KB entry limit (which also counts
# source and detail type); a larger rest is split over several continuations.
MAX_CONTINUATION_DETAIL_BYTES = 200_000

# One page of messages to cancel, and the selection left after it (None: nothing left).
Step = tuple[tuple[ProcessingMessage, ...], BulkSelection | None]


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

    def run(
        self,
        selection: BulkSelection,
        bulk_id: str,
        remaining_ms: Callable[[], int],
        *,
        continuation: bool,
    ) -> BulkProgress:
        """Cancel what the selection matches until done or time runs short, then continue it.

        `continuation`: the event is one of this service's own continuations (only those may
        carry a position). At least one page is handled per invocation, so every continuation
        makes progress. Raises InvalidBulkRequest for a position that would widen the selection.
        """
        checked = self._checked(selection.model_copy(update={"bulk_id": bulk_id}), continuation)
        if checked is None:
            return BulkProgress((), continued=False)
        request = CancelRequest(
            request_id=bulk_id,
            requested_by=BULK_REQUESTER,
            reason=checked.reason,
            requested_at=utc_timestamp(self._clock()),
        )
        cancelled: list[str] = []
        for messages, rest in self._steps(checked):
            cancelled.extend(self._cancel_service.cancel(messages, request).cancelled_ids)
            if rest is not None and remaining_ms() < SAFETY_MARGIN_MS:
                details = split_to_fit(rest)
                self._continuations.publish(details)
                logger.info(
                    "bulk continues in new invocations",
                    extra={"cancelled_count": len(cancelled), "continuations": len(details)},
                )
                return BulkProgress(tuple(cancelled), continued=True)
        return BulkProgress(tuple(cancelled), continued=False)

    def _checked(self, selection: BulkSelection, continuation: bool) -> BulkSelection | None:
        """The selection with its position narrowed to what it may continue (None: nothing left)."""
        if selection.cursor is None:
            return selection
        if not continuation:
            raise InvalidBulkRequest("a position is honoured only on the service's own continuations")
        if isinstance(selection, BulkOlderThan):
            latest_cutoff = utc_timestamp(self._clock() - timedelta(seconds=selection.older_than_seconds))
            if selection.cursor.cutoff > latest_cutoff:
                raise InvalidBulkRequest("the position's cutoff is later than the selection allows")
        if isinstance(selection, BulkByOwner) and selection.cursor is not None:
            return self._owned_only(selection, selection.cursor)
        return selection

    def _owned_only(self, selection: BulkByOwner, position: OwnerPosition) -> BulkSelection | None:
        """Only the owner's projects of a position are honoured (a project may also have changed
        hands since the bulk began); the start key goes with its project."""
        owned = set(self._projects.ids_owned_by(selection.owner_id))
        kept = [project_id for project_id in position.project_ids if project_id in owned]
        if len(kept) < len(position.project_ids):
            logger.warning(
                "bulk position names projects the owner does not own; they are skipped",
                extra={"skipped_count": len(position.project_ids) - len(kept)},
            )
        if not kept:
            return None
        start_key = position.start_key if kept[0] == position.project_ids[0] else None
        return selection.model_copy(update={"cursor": OwnerPosition(projectIds=kept, startKey=start_key)})

    def _steps(self, selection: BulkSelection) -> Iterator[Step]:
        if isinstance(selection, BulkOlderThan):
            return self._older_than_steps(selection)
        if isinstance(selection, BulkByProjects):
            project_ids = list(dict.fromkeys(selection.project_ids))
            start = selection.cursor.start_key if selection.cursor else None
        elif selection.cursor is not None:
            project_ids, start = selection.cursor.project_ids, selection.cursor.start_key
        else:
            project_ids, start = self._projects.ids_owned_by(selection.owner_id), None
        return self._project_steps(selection, project_ids, page_key(start))

    def _project_steps(
        self, selection: BulkByProjects | BulkByOwner, project_ids: list[str], start_key: PageKey | None
    ) -> Iterator[Step]:
        for index, project_id in enumerate(project_ids):
            while True:
                page = self._messages.processing_in_project_page(project_id, start_key, PAGE_SIZE)
                start_key = page.next_key
                left = project_ids[index:] if start_key else project_ids[index + 1 :]
                yield page.messages, _projects_left(selection, left, start_key)
                if start_key is None:
                    break

    def _older_than_steps(self, selection: BulkOlderThan) -> Iterator[Step]:
        # The cutoff is fixed once, so every continuation selects against the same moment.
        position = selection.cursor or AgePosition(
            cutoff=utc_timestamp(self._clock() - timedelta(seconds=selection.older_than_seconds))
        )
        start_key = page_key(position.start_key)
        while True:
            page = self._messages.processing_updated_before_page(position.cutoff, start_key, PAGE_SIZE)
            start_key = page.next_key
            rest = None
            if start_key is not None:
                rest = selection.model_copy(
                    update={
                        "cursor": AgePosition(
                            cutoff=position.cutoff, startKey=AgePageKey.model_validate(start_key)
                        )
                    }
                )
            yield page.messages, rest
            if rest is None:
                return


def _projects_left(
    selection: BulkByProjects | BulkByOwner, project_ids: list[str], start_key: PageKey | None
) -> BulkSelection | None:
    """The selection narrowed to these projects, the first resuming at `start_key`."""
    if not project_ids:
        return None
    key = ProjectPageKey.model_validate(start_key) if start_key else None
    if isinstance(selection, BulkByProjects):
        return selection.model_copy(
            update={"project_ids": project_ids, "cursor": ProjectsPosition(startKey=key) if key else None}
        )
    return selection.model_copy(update={"cursor": OwnerPosition(projectIds=project_ids, startKey=key)})


def split_to_fit(selection: BulkSelection) -> list[dict[str, object]]:
    """The selection as continuation details, each under MAX_CONTINUATION_DETAIL_BYTES: a list of
    projects too long for one event is halved until every part fits."""
    detail = selection.model_dump(by_alias=True, exclude_none=True)
    halves = _halves(selection)
    if halves is None or len(json.dumps(detail, separators=(",", ":"))) <= MAX_CONTINUATION_DETAIL_BYTES:
        return [detail]
    return split_to_fit(halves[0]) + split_to_fit(halves[1])


def _halves(selection: BulkSelection) -> tuple[BulkSelection, BulkSelection] | None:
    """The selection's projects in two parts, the start key staying with the first project's part
    (None: a bulk by age, or fewer than two projects)."""
    if isinstance(selection, BulkByProjects) and len(selection.project_ids) > 1:
        ids, half = selection.project_ids, len(selection.project_ids) // 2
        return (
            selection.model_copy(update={"project_ids": ids[:half]}),
            selection.model_copy(update={"project_ids": ids[half:], "cursor": None}),
        )
    if isinstance(selection, BulkByOwner) and selection.cursor and len(selection.cursor.project_ids) > 1:
        position, half = selection.cursor, len(selection.cursor.project_ids) // 2
        return (
            selection.model_copy(
                update={"cursor": position.model_copy(update={"project_ids": position.project_ids[:half]})}
            ),
            selection.model_copy(update={"cursor": OwnerPosition(projectIds=position.project_ids[half:])}),
        )
    return None
