"""The fault matrix of the agent-facing functions: the execution status function and the stopper,
each call failing every way AWS fails, then the retries of Lambda or of the stop queue (what is
checked: support/fault_ledger.py); and a refused stop, which is not retried."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from cancel_service.handlers import execution_status, stop_agent
from cancel_service.models import utc_timestamp
from support.constants import (
    AGENT_NAME,
    AGENT_ROLE,
    AGENT_STATE_MACHINE_ARN,
    OWNER,
    PROJECT,
    STAND_IN_AGENT,
)
from support.events import eventbridge_event
from support.fault_cases import (
    CANCEL_SOURCE,
    EXECUTION_CASES,
    EXECUTION_PREFIX,
    STOP_CASES,
    Case,
    case_id,
)
from support.fault_ledger import (
    MAX_RETRIES,
    Invocation,
    Ledger,
    Outcome,
    conclude,
    retry_until_success,
)
from support.http_faults import FaultPlan
from support.store import Store

pytestmark = pytest.mark.proof


@pytest.mark.parametrize("case", EXECUTION_CASES, ids=case_id)
def test_execution_status_function(case: Case, store: Store, plan: FaultPlan, lambda_context: Any) -> None:
    store.put_project()
    aborted = EXECUTION_PREFIX + "x1"
    store.put_message("x1", execution_arn=aborted)
    store.put_message("x2", execution_arn=EXECUTION_PREFIX + "x2")
    store.put_message("x3", status="completed", execution_arn=EXECUTION_PREFIX + "x3")
    stop_ms = int(datetime.now(UTC).timestamp() * 1000)
    event = eventbridge_event(
        "Step Functions Execution Status Change",
        {
            "executionArn": aborted,
            "stateMachineArn": AGENT_STATE_MACHINE_ARN,
            "status": "ABORTED",
            "startDate": stop_ms - 60_000,
            "stopDate": stop_ms,
        },
        source="aws.states",
    )

    def lambda_delivers(_attempt: int) -> Invocation:
        # Lambda retries the very same event: its id is the request id every time.
        try:
            answer = execution_status.handler(event, lambda_context)
        except Exception as error:
            return Invocation(event["id"], f"raised {type(error).__name__}", None)
        return Invocation(event["id"], "returned", answer["cancelledIds"])

    ledger = Ledger(store, plan, case, {"x1"}, {"x2": "processing", "x3": "completed"})
    outcome = retry_until_success(case, plan, ledger, lambda_delivers)
    conclude(case, outcome)
    ledger.converged()


@pytest.mark.parametrize("case", STOP_CASES, ids=case_id)
@pytest.mark.usefixtures("store")
def test_stop_agent_function(case: Case, plan: FaultPlan, lambda_context: Any) -> None:
    # moto's executions stay RUNNING until stopped: enough here, and quicker than running them.
    sfn = boto3.client("stepfunctions")
    machine = sfn.create_state_machine(
        name=AGENT_NAME, definition=STAND_IN_AGENT.read_text(), roleArn=AGENT_ROLE
    )["stateMachineArn"]
    execution_arn = sfn.start_execution(stateMachineArn=machine, name="m1")["executionArn"]
    event = cancel_requested(execution_arn)
    batch = {"Records": [sqs_record(event)]}
    first = ""
    for attempt in range(MAX_RETRIES + 1):
        # A record reported failed is delivered again by the queue, as it is.
        if attempt == 0:
            with plan.arm(case.fault()):
                answer = stop_agent.user_lane_handler(batch, lambda_context)
        else:
            answer = stop_agent.user_lane_handler(batch, lambda_context)
        if answer["batchItemFailures"]:
            assert answer["batchItemFailures"] == [{"itemIdentifier": "record-1"}]
            first = first or "record failed"
            continue
        first = first or "returned"
        assert _status_within(sfn, execution_arn, "ABORTED") == "ABORTED"
        conclude(case, Outcome(first, attempt))
        return
    raise AssertionError(f"the execution was not stopped after {MAX_RETRIES} retries without the fault")


def _status_within(sfn: Any, execution_arn: str, wanted: str, seconds: float = 5.0) -> str:
    """The execution's status once it is `wanted`, or as it is after `seconds`: a stop that
    succeeded shows in describe_execution a moment later when moto runs the executions."""
    deadline = time.monotonic() + seconds
    while (status := str(sfn.describe_execution(executionArn=execution_arn)["status"])) != wanted:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return status


def cancel_requested(execution_arn: str) -> dict[str, Any]:
    """The cancel event of message m1, whose agent runs the execution `execution_arn`."""
    return eventbridge_event(
        "Message Cancel Requested",
        {
            "messageId": "m1",
            "projectId": PROJECT,
            "conversationId": "conv_1",
            "executionArn": execution_arn,
            "requestedBy": OWNER,
            "reason": "user_request",
            "requestedAt": utc_timestamp(),
            "requestId": "http-1",
        },
        source=CANCEL_SOURCE,
    )


def sqs_record(event: dict[str, Any]) -> dict[str, Any]:
    """One record of the stop queue, as Lambda's event source mapping hands it over."""
    return {
        "messageId": "record-1",
        "receiptHandle": "handle-1",
        "body": json.dumps(event),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:stop-requests",
        "awsRegion": "us-east-1",
    }


@pytest.mark.usefixtures("store")
def test_stop_refuses_an_execution_of_another_state_machine_without_raising(
    plan: FaultPlan, lambda_context: Any
) -> None:
    sfn = boto3.client("stepfunctions")
    other = sfn.create_state_machine(
        name="not-the-agent", definition=STAND_IN_AGENT.read_text(), roleArn=AGENT_ROLE
    )["stateMachineArn"]
    execution_arn = sfn.start_execution(stateMachineArn=other, name="m1")["executionArn"]
    event = cancel_requested(execution_arn)

    answer = stop_agent.user_lane_handler({"Records": [sqs_record(event)]}, lambda_context)

    assert answer == {"batchItemFailures": []}, "a refused stop would be retried"
    assert plan.attempts["StopExecution"] == 0, "StopExecution called on another state machine's execution"
    assert sfn.describe_execution(executionArn=execution_arn)["status"] == "RUNNING"
