"""Ended agent executions: nothing stays processing when its agent is gone, and a cancel's
ABORTED confirms that the agent really stopped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cancel_service.handlers import execution_status
from support.constants import AGENT_STATE_MACHINE_ARN, OWNER, PROJECT
from support.events import eventbridge_event, matches, rule_pattern
from support.http_api import post_cancel
from support.store import Store

ARN = AGENT_STATE_MACHINE_ARN.replace(":stateMachine:", ":execution:") + ":"


def status_change(execution_arn: str, status: str, stop_date: datetime | None = None) -> dict:
    stopped = stop_date or datetime.now(UTC)
    event = eventbridge_event(
        "Step Functions Execution Status Change",
        {
            "executionArn": execution_arn,
            "stateMachineArn": AGENT_STATE_MACHINE_ARN,
            "name": execution_arn.rsplit(":", 1)[1],
            "status": status,
            "startDate": int(stopped.timestamp() * 1000) - 60_000,
            "stopDate": int(stopped.timestamp() * 1000),
            "input": "{}",
            "output": None,
            "error": None,
            "cause": None,
        },
        source="aws.states",
    )
    event["resources"] = [execution_arn]
    return event


@pytest.fixture
def scene(store: Store) -> Store:
    store.put_project()
    return store


@pytest.mark.parametrize(
    ("status", "reason"), [("FAILED", "execution_failed"), ("TIMED_OUT", "execution_timed_out")]
)
def test_an_execution_that_ends_while_its_message_is_processing_leaves_it_failed(
    scene, lambda_context, status, reason
):
    scene.put_message("m1", execution_arn=ARN + "m1")
    scene.put_message("m2", execution_arn=ARN + "m2")

    answer = execution_status.handler(status_change(ARN + "m1", status), lambda_context)

    assert answer["failedIds"] == ["m1"]
    item = scene.message("m1")
    assert item["status"] == "failed"
    assert item["failureReason"] == reason
    assert item["failedAt"] == item["updatedAt"]
    assert scene.status("m2") == "processing"
    assert scene.published() == []  # a failure is not a cancel


@pytest.mark.parametrize("finished", ["completed", "failed", "cancelled"])
def test_a_message_that_already_moved_on_is_left_alone(scene, lambda_context, finished):
    scene.put_message("m1", status=finished, execution_arn=ARN + "m1", updated_at="2026-11-24T12:00:00.000Z")

    answer = execution_status.handler(status_change(ARN + "m1", "FAILED"), lambda_context)

    assert answer["failedIds"] == []
    assert scene.message("m1")["status"] == finished
    assert scene.message("m1")["updatedAt"] == "2026-11-24T12:00:00.000Z"


def test_an_execution_aborted_by_someone_else_cancels_its_processing_message(scene, lambda_context):
    scene.put_message("m1", execution_arn=ARN + "m1")

    answer = execution_status.handler(status_change(ARN + "m1", "ABORTED"), lambda_context)

    assert answer["cancelledIds"] == ["m1"]
    item = scene.message("m1")
    assert item["status"] == "cancelled"
    assert item["cancelledBy"] == "system:stepfunctions"
    assert item["cancelReason"] == "execution_aborted"
    [event] = scene.published()  # cancelled through the one cancel core: its event first
    assert event["detail"]["messageId"] == "m1"


def test_the_aborted_event_of_a_cancelled_message_records_the_confirmed_stop_once(
    scene, mint, lambda_context, capsys
):
    scene.put_message("m1", execution_arn=ARN + "m1")
    post_cancel(lambda_context, {"projectId": PROJECT}, token=mint())
    cancelled_at = datetime.fromisoformat(scene.message("m1")["cancelledAt"].replace("Z", "+00:00"))
    stop_date = cancelled_at + timedelta(milliseconds=1500)  # Step Functions' stopDate, in ms
    capsys.readouterr()

    answer = execution_status.handler(status_change(ARN + "m1", "ABORTED", stop_date), lambda_context)

    assert answer["agentStoppedIds"] == ["m1"]
    item = scene.message("m1")
    assert item["status"] == "cancelled"
    assert item["cancelledBy"] == OWNER  # still the user's cancel
    assert item["agentStoppedAt"] == stop_date.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert '"AgentStopLatency":[1500.0]' in capsys.readouterr().out.replace(" ", "")

    again = execution_status.handler(status_change(ARN + "m1", "ABORTED", stop_date), lambda_context)
    assert again["agentStoppedIds"] == []  # recorded once


@pytest.mark.usefixtures("scene")
def test_an_execution_without_a_message_changes_nothing(lambda_context):
    answer = execution_status.handler(status_change(ARN + "unknown", "FAILED"), lambda_context)

    assert answer == {"failedIds": [], "cancelledIds": [], "agentStoppedIds": []}


@pytest.mark.parametrize("status", ["SUCCEEDED", "RUNNING", "PENDING_REDRIVE"])
def test_an_event_of_another_status_is_refused_not_retried(scene, lambda_context, log_lines, status):
    scene.put_message("m1", execution_arn=ARN + "m1")

    assert execution_status.handler(status_change(ARN + "m1", status), lambda_context) == {"rejected": True}
    assert scene.status("m1") == "processing"
    assert any("rejected" in line["message"] for line in log_lines())


def test_the_rule_takes_only_the_agents_ended_executions(template):
    pattern = rule_pattern(template, "ExecutionStatusFunction", "AgentExecutionEnded")

    for status in ("FAILED", "TIMED_OUT", "ABORTED"):
        assert matches(pattern, status_change(ARN + "m1", status))
    assert not matches(pattern, status_change(ARN + "m1", "SUCCEEDED"))
    assert not matches(pattern, status_change(ARN + "m1", "RUNNING"))
    other = status_change(ARN + "m1", "FAILED")
    other["detail"]["stateMachineArn"] = AGENT_STATE_MACHINE_ARN + "-other"
    assert not matches(pattern, other)
