"""What an ended agent execution means for its message.

- FAILED or TIMED_OUT while the message is processing: the message is failed (conditionally),
  with the execution's status as the reason; nothing will ever finish it otherwise.
- ABORTED while the message is processing (stopped by someone else than this service): the
  message is cancelled through the one cancel core, so its cancel event is published as for
  any other cancel.
- ABORTED of a message this service cancelled: the agent is confirmed stopped; the time is
  recorded once (`agentStoppedAt`) and the request-to-stop latency reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cancel_service.core.cancel import CancelService
from cancel_service.event_models import EndedStatus
from cancel_service.models import CANCELLED, PROCESSING, CancelRequest, ExecutionMessage, utc_timestamp
from cancel_service.observability import logger

STEP_FUNCTIONS_REQUESTER = "system:stepfunctions"
END_REASONS: dict[EndedStatus, str] = {
    "FAILED": "execution_failed",
    "TIMED_OUT": "execution_timed_out",
    "ABORTED": "execution_aborted",
}


@dataclass(frozen=True, slots=True)
class ConfirmedStop:
    message_id: str
    latency_ms: int


@dataclass(frozen=True, slots=True)
class ExecutionEndOutcome:
    failed_ids: tuple[str, ...] = ()
    cancelled_ids: tuple[str, ...] = ()
    confirmed_stops: tuple[ConfirmedStop, ...] = ()


class ExecutionMessages(Protocol):
    """What an execution's end needs of the messages table."""

    def of_execution(self, execution_arn: str) -> list[ExecutionMessage]: ...

    def mark_failed(self, message_id: str, reason: str, at: str) -> bool: ...

    def mark_agent_stopped(self, message_id: str, at: str) -> str | None: ...


def _parse_timestamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class AgentOutcomes:
    def __init__(self, messages: ExecutionMessages, cancel_service: CancelService) -> None:
        self._messages = messages
        self._cancel_service = cancel_service

    def execution_ended(
        self, execution_arn: str, status: EndedStatus, stopped_at: datetime, event_id: str
    ) -> ExecutionEndOutcome:
        """Apply what the end of `execution_arn` means; `event_id` (the status-change event's id)
        is the id of the cancel request an ABORTED execution makes."""
        found = self._messages.of_execution(execution_arn)
        if not found:
            logger.info("no message for this execution", extra={"execution_arn": execution_arn})
            return ExecutionEndOutcome()
        processing = [entry.message for entry in found if entry.status == PROCESSING]
        reason = END_REASONS[status]
        if status != "ABORTED":
            now = utc_timestamp()
            return ExecutionEndOutcome(
                failed_ids=tuple(m.id for m in processing if self._messages.mark_failed(m.id, reason, now))
            )
        request = CancelRequest(
            request_id=event_id,
            requested_by=STEP_FUNCTIONS_REQUESTER,
            reason=reason,
            requested_at=utc_timestamp(),
        )
        cancelled_ids = self._cancel_service.cancel(processing, request).cancelled_ids
        confirmed = []
        for entry in found:
            if entry.status != CANCELLED:
                continue
            cancelled_at = self._messages.mark_agent_stopped(entry.message.id, utc_timestamp(stopped_at))
            if cancelled_at is not None:
                latency = stopped_at - _parse_timestamp(cancelled_at)
                confirmed.append(ConfirmedStop(entry.message.id, max(0, int(latency.total_seconds() * 1000))))
        return ExecutionEndOutcome(cancelled_ids=cancelled_ids, confirmed_stops=tuple(confirmed))
