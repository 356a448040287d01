"""The stopper: a batch of stop requests from one lane's queue becomes StopExecution calls on the
agent's executions, within the invocation's time, and the records to deliver again.

Each SQS record is one EventBridge `Message Cancel Requested` event that carries an
executionArn. The records of a batch are stopped together (as many at once as the executor has
workers): all the messages of a user's Stop end at about the same moment, not one per pacing
interval. In the bulk lane every attempt also waits for its moment under the lane's shared pace
(see StopAttempts in adapters/agent_executions.py).

Before each stop, and before each attempt and wait of the client, the remaining time of the
invocation is checked: a stop that no longer fits is not begun, and its record goes back to the
queue (a batch item failure) with the records that failed and may succeed later (a throttle left
after the client's retries, a Step Functions error). A record whose stop succeeded, was not
needed (the execution had ended or is gone) or can never succeed (not a cancel event, an
execution of another state machine, an ARN or a cause Step Functions refuses) is handled: it is
never retried; the last kind is logged and counted as rejected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from enum import StrEnum
from typing import Any, Protocol

from pydantic import ValidationError

from cancel_service.errors import NotAnAgentExecution, OutOfTime, StopRefused
from cancel_service.event_models import MessageCancelRequested
from cancel_service.observability import logger


class StopOutcome(StrEnum):
    """What became of one record; the value is the metric an operator graphs."""

    STOPPED = "AgentStopsRequested"
    NOT_NEEDED = "AgentStopsNotNeeded"
    REJECTED = "AgentStopsRejected"
    FAILED = "AgentStopsFailed"
    UNREACHED = "AgentStopsUnreached"

    @property
    def retried(self) -> bool:
        return self in (StopOutcome.FAILED, StopOutcome.UNREACHED)


class StopTime(Protocol):
    """The time an invocation has for its stop attempts (told how many stops it begins)."""

    def begin(self, stops: int, remaining_seconds: Callable[[], float]) -> None: ...

    def has_time(self) -> bool: ...


class Executions(Protocol):
    """The agent's executions, as Step Functions stops them (raising StopRefused, OutOfTime)."""

    @property
    def attempts(self) -> StopTime: ...

    def stop(self, execution_arn: str, cause: str) -> bool: ...


def stop_cause(reason: str, requested_by: str) -> str:
    return f"{reason} requested by {requested_by}"


class AgentStops:
    """One lane's stopper: its executions (paced or not) and the workers its batches share."""

    def __init__(self, executions: Executions, executor: Executor) -> None:
        self._executions = executions
        self._executor = executor  # its workers bound the stops in flight

    def stop_batch(
        self, records: list[Mapping[str, Any]], remaining_seconds: Callable[[], float]
    ) -> list[tuple[str, StopOutcome]]:
        """Each record's message id and outcome, in the batch's order."""
        self._executions.attempts.begin(len(records), remaining_seconds)
        outcomes = self._executor.map(self._stop_one, records)
        return list(zip((str(record["messageId"]) for record in records), outcomes, strict=True))

    def _stop_one(self, record: Mapping[str, Any]) -> StopOutcome:
        about: dict[str, Any] = {"sqs_message_id": record["messageId"]}
        if not self._executions.attempts.has_time():
            logger.info("agent stop left for the queue: no time left", extra=about)
            return StopOutcome.UNREACHED
        try:
            detail = MessageCancelRequested.model_validate_json(record["body"]).detail
        except ValidationError as error:
            errors = error.errors(include_url=False, include_input=False)
            return _rejected("not a cancel event", **about, errors=errors)
        about |= {"message_id": detail.message_id, "execution_arn": detail.execution_arn}
        try:
            cause = stop_cause(detail.reason, detail.requested_by)
            stopped = self._executions.stop(detail.execution_arn, cause)
        except NotAnAgentExecution:
            return _rejected("the execution is not one of the agent's state machine", **about)
        except StopRefused as refusal:
            return _rejected(str(refusal), **about)
        except OutOfTime:
            logger.info("agent stop left for the queue: no time left", extra=about)
            return StopOutcome.UNREACHED
        except Exception:  # noqa: BLE001 - any other failure may pass: the queue delivers it again
            logger.exception("agent stop failed; the queue delivers it again", extra=about)
            return StopOutcome.FAILED
        logger.info("agent stop handled", extra={**about, "stopped": stopped})
        return StopOutcome.STOPPED if stopped else StopOutcome.NOT_NEEDED


def _rejected(why: str, **details: Any) -> StopOutcome:
    logger.warning(f"agent stop rejected: {why}", extra=details)
    return StopOutcome.REJECTED
