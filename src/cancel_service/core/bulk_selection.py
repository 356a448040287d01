"""What a bulk selects, one page at a time, and where its next page starts.

A selection (listed projects, an owner's projects, or messages processing for too long) is read
from indexes a page at a time. Where the next page starts is plain data (`event_models.Position`):
the project and the index's page key, or the age cutoff the bulk fixed when it started and the
age index's position it read last. The bulk
keeps it in its state table after every page, and names it in its continuations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol, TypeVar

from cancel_service.event_models import (
    AgePosition,
    BulkByOwner,
    BulkByProjects,
    BulkOlderThan,
    BulkSelection,
    OwnerPosition,
    Position,
    ProjectsPosition,
)
from cancel_service.models import AgePage, MessagePage, PageKey, ProcessingMessage, utc_timestamp

T = TypeVar("T")


class OwnedProjects(Protocol):
    def owned_page(self, owner_id: str, after: str | None, limit: int) -> tuple[list[str], bool]: ...


class ProjectMessages(Protocol):
    def processing_in_project_page(
        self, project_id: str, start_key: PageKey | None, limit: int | None = None
    ) -> MessagePage: ...


class StaleMessages(Protocol):
    def stale_page(self, cutoff: str, after: str | None, limit: int) -> AgePage: ...


class Retrying(Protocol):
    """How the bulk tries one read again while its dependency fails."""

    def __call__(self, read: Callable[[], T], /) -> T: ...


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a selection: its messages, the ids of items that are not readable messages,
    and where the next page starts (None: nothing is left)."""

    messages: tuple[ProcessingMessage, ...]
    unreadable: tuple[str, ...]
    next: Position | None


@dataclass(frozen=True, slots=True)
class BulkPages:
    """Reads a selection's pages; every read goes through `retrying`."""

    projects: OwnedProjects
    messages: ProjectMessages
    ages: StaleMessages
    retrying: Retrying

    @staticmethod
    def start(selection: BulkSelection, now: datetime) -> Position:
        """Where a new bulk's first page starts (a bulk by age fixes its cutoff here, once)."""
        if isinstance(selection, BulkOlderThan):
            cutoff = utc_timestamp(now - timedelta(seconds=selection.older_than_seconds))
            return AgePosition(link=0, cutoff=cutoff)
        if isinstance(selection, BulkByOwner):
            return OwnerPosition(link=0)
        return ProjectsPosition(link=0)

    def page(self, selection: BulkSelection, position: Position, limit: int) -> Page:
        """Up to `limit` messages from `position` on."""
        if isinstance(selection, BulkOlderThan) and isinstance(position, AgePosition):
            aged = self.retrying(partial(self.ages.stale_page, position.cutoff, position.after, limit))
            following = None if aged.after is None else position.model_copy(update={"after": aged.after})
            return Page(aged.messages, aged.unreadable, following)
        if isinstance(selection, BulkByOwner) and isinstance(position, OwnerPosition):
            return self._owner_page(selection, position, limit)
        if isinstance(selection, BulkByProjects) and isinstance(position, ProjectsPosition):
            return self._listed_project_page(selection, position, limit)
        raise TypeError(f"a {type(position).__name__} is no position of a {type(selection).__name__}")

    def _listed_project_page(self, selection: BulkByProjects, position: ProjectsPosition, limit: int) -> Page:
        project_ids = selection.distinct_project_ids()
        found = self._read(
            self.messages.processing_in_project_page, project_ids[position.index], position, limit
        )
        if found.next_key is not None:
            return _page(found, _at(position, found.next_key))
        if position.index + 1 < len(project_ids):
            return _page(found, position.model_copy(update={"index": position.index + 1, "start_key": None}))
        return _page(found, None)

    def _owner_page(self, selection: BulkByOwner, position: OwnerPosition, limit: int) -> Page:
        project_id = position.project_id
        if project_id is None:
            project_id = self._project_after(selection.owner_id, None)
            if project_id is None:
                return Page((), (), None)
        found = self._read(
            self.messages.processing_in_project_page,
            project_id,
            position.model_copy(update={"project_id": project_id}),
            limit,
        )
        if found.next_key is not None:
            return _page(
                found, position.model_copy(update={"project_id": project_id, "start_key": found.next_key})
            )
        next_project = self._project_after(selection.owner_id, project_id)
        if next_project is None:
            return _page(found, None)
        return _page(found, position.model_copy(update={"project_id": next_project, "start_key": None}))

    def _project_after(self, owner_id: str, after: str | None) -> str | None:
        """The owner's next project in the owner index (None: there is none)."""
        ids, _ = self.retrying(partial(self.projects.owned_page, owner_id, after, 1))
        return ids[0] if ids else None

    def _read(
        self,
        query: Callable[[str, PageKey | None, int], MessagePage],
        key: str,
        position: Position,
        limit: int,
    ) -> MessagePage:
        start_key: PageKey | None = position.start_key  # type: ignore[assignment]
        return self.retrying(partial(query, key, start_key, limit))


def _at(position: Position, next_key: PageKey) -> Position:
    return position.model_copy(update={"start_key": next_key})


def _page(found: MessagePage, next_position: Position | None) -> Page:
    return Page(found.messages, found.unreadable, next_position)
