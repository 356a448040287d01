"""What an ended agent execution means for its message (agent_outcomes.py), against in-memory
stand-ins: FAILED and TIMED_OUT fail a processing message; ABORTED cancels one through the cancel
core (its event published) and confirms, once, the stop of one this service cancelled."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cancel_service.core.agent_outcomes import (
    STEP_FUNCTIONS_REQUESTER,
    AgentOutcomes,
    ConfirmedStop,
    ExecutionEndOutcome,
)
from cancel_service.core.cancel import CancelService
from cancel_service.event_models import EndedStatus
from cancel_service.models import Project
from support.constants import OWNER, PROJECT
from support.in_memory import InMemoryMessages, InMemoryProjects, RecordingEvents, ScriptedCalls

STOPPED_AT = datetime(2026, 11, 24, 12, 0, 1, 250_000, tzinfo=UTC)
CANCELLED_AT = "2026-11-24T12:00:00.000Z"


@pytest.fixture
def messages() -> InMemoryMessages:
    return InMemoryMessages()


@pytest.fixture
def events() -> RecordingEvents:
    return RecordingEvents()


@pytest.fixture
def outcomes(messages: InMemoryMessages, events: RecordingEvents) -> AgentOutcomes:
    core = CancelService(InMemoryProjects(Project(PROJECT, OWNER)), messages, events, ScriptedCalls())
    return AgentOutcomes(messages, core)


def arn(message_id: str) -> str:
    return f"arn:execution:{message_id}"


@pytest.mark.parametrize(
    ("status", "reason"), [("FAILED", "execution_failed"), ("TIMED_OUT", "execution_timed_out")]
)
def test_a_failed_execution_fails_its_processing_message(
    outcomes: AgentOutcomes,
    messages: InMemoryMessages,
    events: RecordingEvents,
    status: EndedStatus,
    reason: str,
) -> None:
    [message_id] = messages.add(1)

    outcome = outcomes.execution_ended(arn(message_id), status, STOPPED_AT, "evt_1")

    assert outcome.failed_ids == (message_id,)
    assert messages.status(message_id) == "failed"
    assert messages.stored[message_id].fields["failureReason"] == reason
    assert events.published == []


def test_a_failed_execution_leaves_a_message_that_finished_meanwhile(
    outcomes: AgentOutcomes, messages: InMemoryMessages
) -> None:
    [message_id] = messages.add(1)
    messages.stored[message_id].status = "completed"

    outcome = outcomes.execution_ended(arn(message_id), "FAILED", STOPPED_AT, "evt_1")

    assert outcome.failed_ids == ()
    assert messages.status(message_id) == "completed"


def test_an_execution_aborted_by_someone_else_cancels_its_message_through_the_core(
    outcomes: AgentOutcomes, messages: InMemoryMessages, events: RecordingEvents
) -> None:
    [message_id] = messages.add(1)

    outcome = outcomes.execution_ended(arn(message_id), "ABORTED", STOPPED_AT, "evt_1")

    assert outcome.cancelled_ids == (message_id,)
    assert messages.status(message_id) == "cancelled"
    [(published_id, request)] = events.published
    assert published_id == message_id
    assert (request.request_id, request.requested_by, request.reason) == (
        "evt_1",
        STEP_FUNCTIONS_REQUESTER,
        "execution_aborted",
    )


def test_the_stop_of_a_message_this_service_cancelled_is_confirmed_once_with_its_latency(
    outcomes: AgentOutcomes, messages: InMemoryMessages, events: RecordingEvents
) -> None:
    [message_id] = messages.add(1)
    messages.stored[message_id].status = "cancelled"
    messages.stored[message_id].fields["cancelledAt"] = CANCELLED_AT

    first = outcomes.execution_ended(arn(message_id), "ABORTED", STOPPED_AT, "evt_1")
    again = outcomes.execution_ended(arn(message_id), "ABORTED", STOPPED_AT, "evt_1")

    assert first.confirmed_stops == (ConfirmedStop(message_id, 1250),)
    assert first.cancelled_ids == ()
    assert messages.stored[message_id].fields["agentStoppedAt"] == "2026-11-24T12:00:01.250Z"
    assert again.confirmed_stops == ()
    assert events.published == []


def test_a_stop_recorded_before_the_cancel_time_reports_no_negative_latency(
    outcomes: AgentOutcomes, messages: InMemoryMessages
) -> None:
    [message_id] = messages.add(1)
    messages.stored[message_id].status = "cancelled"
    messages.stored[message_id].fields["cancelledAt"] = "2026-11-24T12:00:05.000Z"

    outcome = outcomes.execution_ended(arn(message_id), "ABORTED", STOPPED_AT, "evt_1")

    assert outcome.confirmed_stops == (ConfirmedStop(message_id, 0),)


def test_an_execution_with_no_message_changes_nothing(
    outcomes: AgentOutcomes, events: RecordingEvents
) -> None:
    outcome = outcomes.execution_ended(arn("unknown"), "ABORTED", STOPPED_AT, "evt_1")

    assert outcome == ExecutionEndOutcome()
    assert events.published == []
