"""The cancel rules, shared by every entry point (HTTP, bulk, sweeps) and free of HTTP.

1. Only messages still `processing` are touched, read through an index.
2. A cancel event is published first; a message is cancelled only once EventBridge accepted it,
   so no message is marked cancelled while its agent was never told to stop.
3. The status moves to `cancelled` by a conditional write; a message that finished meanwhile is
   left as it is and not reported.
4. Progress is kept: when a dependency fails part-way, what was cancelled stays cancelled and the
   failure is raised so the caller can retry the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cancel_service.adapters.cancel_events import CancelEventPublisher
from cancel_service.adapters.messages import MessagesTable
from cancel_service.adapters.projects import ProjectsTable
from cancel_service.errors import DependencyUnavailable, ProjectNotFound
from cancel_service.models import USER_REQUEST_REASON, Caller, CancelRequest, ProcessingMessage, utc_timestamp
from cancel_service.observability import logger


@dataclass(frozen=True, slots=True)
class CancelResult:
    cancelled_ids: tuple[str, ...]

    @property
    def cancelled(self) -> bool:
        return bool(self.cancelled_ids)


class CancelService:
    def __init__(
        self, projects: ProjectsTable, messages: MessagesTable, events: CancelEventPublisher
    ) -> None:
        self._projects = projects
        self._messages = messages
        self._events = events

    def cancel_project_for(self, caller: Caller, project_id: str, request_id: str) -> CancelResult:
        """A user's Stop (request `request_id`): every processing message of a project the caller
        may touch."""
        project = self._projects.get(project_id)
        if project is None or not project.accessible_by(caller):
            raise ProjectNotFound(project_id)
        request = CancelRequest(
            request_id=request_id,
            requested_by=caller.user_id,
            reason=USER_REQUEST_REASON,
            requested_at=utc_timestamp(),
        )
        return self.cancel(list(self._messages.processing_in_project(project_id)), request)

    def cancel(self, messages: Sequence[ProcessingMessage], request: CancelRequest) -> CancelResult:
        """Cancel these messages by the rules above; raise DependencyUnavailable on a partial failure."""
        if not messages:
            return CancelResult(())
        published = self._events.publish(messages, request)
        writes = self._messages.mark_cancelled(published.accepted, request)
        if writes.already_finished_ids:
            logger.info(
                "messages finished before they could be cancelled",
                extra={"message_ids": writes.already_finished_ids},
            )
        if published.rejected or writes.failed_ids:
            dependency = "eventbridge" if published.rejected else "dynamodb"
            raise DependencyUnavailable(dependency, cancelled_ids=writes.cancelled_ids)
        return CancelResult(writes.cancelled_ids)
