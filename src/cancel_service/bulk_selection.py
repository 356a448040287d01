"""What a bulk selects, page by page, and where each of its continuations resumes.

A selection (listed projects, an owner's projects, or messages processing for too long) is read
from indexes one page at a time. After each page comes the rest of the selection: the selection
narrowed to what is left plus a position inside it (the next page's start key), so no page is
read twice. A position is honoured only on the service's own continuations and only where it
narrows the selection: anything else is refused, not retried.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol, TypeVar

from cancel_service.adapters.age_index import AgeIndex
from cancel_service.adapters.messages import MessagesTable, PageKey
from cancel_service.adapters.projects import ProjectsTable
from cancel_service.errors import InvalidBulkRequest
from cancel_service.event_models import (
    AgePosition,
    BulkByOwner,
    BulkByProjects,
    BulkOlderThan,
    BulkProgress,
    BulkSelection,
    OwnerPosition,
    ProjectPageKey,
    ProjectsPosition,
    page_key,
)
from cancel_service.models import ProcessingMessage, utc_timestamp
from cancel_service.observability import logger

# Projects of an owner listed per read of the owner index.
OWNER_PROJECTS_PAGE = 100

# The rest of a selection after a page, given the bulk's running totals at that point.
Rest = Callable[[BulkProgress], BulkSelection]
T = TypeVar("T")


class Retrying(Protocol):
    """How the bulk tries one read again while its dependency fails."""

    def __call__(self, read: Callable[[], T], /) -> T: ...


@dataclass(frozen=True, slots=True)
class BulkPages:
    """Reads a selection's pages; every read goes through `retrying`."""

    projects: ProjectsTable
    messages: MessagesTable
    ages: AgeIndex
    clock: Callable[[], datetime]
    retrying: Retrying

    def checked(self, selection: BulkSelection, continuation: bool) -> BulkSelection:
        """The selection, unless it carries a position it may not: one on an event that is not
        the service's own continuation, or an age cutoff later than the selection allows."""
        if selection.cursor is None:
            return selection
        if not continuation:
            raise InvalidBulkRequest("a position is honoured only on the service's own continuations")
        if isinstance(selection, BulkOlderThan):
            latest_cutoff = utc_timestamp(self.clock() - timedelta(seconds=selection.older_than_seconds))
            if selection.cursor.cutoff > latest_cutoff:
                raise InvalidBulkRequest("the position's cutoff is later than the selection allows")
        return selection

    def steps(self, selection: BulkSelection, quota: Callable[[], int]) -> Iterator[Step]:
        """The selection's pages from its position on; `quota()` is the size of the next page."""
        if isinstance(selection, BulkOlderThan):
            return self._older_than_steps(selection, quota)
        if isinstance(selection, BulkByOwner):
            return self._owner_steps(selection, quota)
        return self._listed_project_steps(selection, quota)

    def _listed_project_steps(self, selection: BulkByProjects, quota: Callable[[], int]) -> Iterator[Step]:
        project_ids = list(dict.fromkeys(selection.project_ids))
        start_key = page_key(selection.cursor.start_key) if selection.cursor else None

        def rest_from(index: int) -> Callable[[PageKey | None], Rest | None]:
            def rest(next_key: PageKey | None) -> Rest | None:
                left = project_ids[index:] if next_key else project_ids[index + 1 :]
                if not left:
                    return None
                return lambda progress: selection.model_copy(
                    update={
                        "project_ids": left,
                        "cursor": ProjectsPosition(startKey=_project_key(next_key), progress=progress),
                    }
                )

            return rest

        for index, project_id in enumerate(project_ids):
            yield from self._project_pages(
                project_id, start_key if index == 0 else None, quota, rest_from(index)
            )

    def _owner_steps(self, selection: BulkByOwner, quota: Callable[[], int]) -> Iterator[Step]:
        def rest_in(project_id: str, last: bool) -> Callable[[PageKey | None], Rest | None]:
            def rest(next_key: PageKey | None) -> Rest | None:
                if next_key is None and last:
                    return None
                # Resumed at this project (from the start once it is done: one cheap read), then
                # the owner's projects after it.
                return lambda progress: selection.model_copy(
                    update={
                        "cursor": OwnerPosition(
                            projectId=project_id, startKey=_project_key(next_key), progress=progress
                        )
                    }
                )

            return rest

        after: str | None = None
        position = selection.cursor
        if position is not None:
            after = position.project_id
            project = self.retrying(lambda: self.projects.get(position.project_id))
            if project is not None and project.owner_id == selection.owner_id:
                start_key = page_key(position.start_key)
                yield from self._project_pages(after, start_key, quota, rest_in(after, last=False))
            else:
                logger.warning("bulk position names a project the owner does not own; skipped")
        while True:
            ids, more = self.retrying(
                partial(self.projects.owned_page, selection.owner_id, after, OWNER_PROJECTS_PAGE)
            )
            for index, project_id in enumerate(ids):
                last = not more and index == len(ids) - 1
                yield from self._project_pages(project_id, None, quota, rest_in(project_id, last))
            if not more or not ids:
                return
            after = ids[-1]

    def _project_pages(
        self,
        project_id: str,
        start_key: PageKey | None,
        quota: Callable[[], int],
        rest: Callable[[PageKey | None], Rest | None],
    ) -> Iterator[Step]:
        while True:
            page = self.retrying(
                partial(self.messages.processing_in_project_page, project_id, start_key, quota())
            )
            start_key = page.next_key
            yield Step(page.messages, rest(start_key))
            if start_key is None:
                return

    def _older_than_steps(self, selection: BulkOlderThan, quota: Callable[[], int]) -> Iterator[Step]:
        # The cutoff is fixed once, so every continuation selects against the same moment.
        cutoff = (
            selection.cursor.cutoff
            if selection.cursor
            else utc_timestamp(self.clock() - timedelta(seconds=selection.older_than_seconds))
        )
        after = selection.cursor.after if selection.cursor else None
        while True:
            page = self.retrying(partial(self.ages.stale_page, cutoff, after, quota()))
            after = page.after
            if after is None:
                yield Step(page.messages, None)
                return
            yield Step(page.messages, partial(_age_rest, selection, cutoff, after))


@dataclass(frozen=True, slots=True)
class Step:
    """One page of messages, and the selection left after it (None: nothing is left)."""

    messages: tuple[ProcessingMessage, ...]
    rest: Rest | None


def _age_rest(selection: BulkOlderThan, cutoff: str, after: str, progress: BulkProgress) -> BulkSelection:
    return selection.model_copy(update={"cursor": AgePosition(cutoff=cutoff, after=after, progress=progress)})


def _project_key(key: PageKey | None) -> ProjectPageKey | None:
    return None if key is None else ProjectPageKey.model_validate(key)
