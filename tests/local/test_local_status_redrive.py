"""`cancel-service status` and `redrive` against the local stack, as an operator runs them: the
standard AWS environment pointed at the stack's moto and `--stack` with the stack's name (the
local stack answers DescribeStacks with the template's outputs and its parameters). A bulk
backlog shows its depth and the time it needs at the stack's StopExecution rate; dead letters go
back to their lane and their agents are stopped."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from devstack.constants import STACK_NAME
from devstack.demo import stand_in_agent_arn
from support.local_stack import StackProcess, operator_aws_environment, wait_until

CLI = Path(sys.executable).parent / "cancel-service"
# Slow enough that a backlog of a few hundred stops lasts the test through.
STOP_RATE = 1
BACKLOG = 300


@pytest.fixture(scope="module")
def stack() -> Iterator[StackProcess]:
    with StackProcess(
        extra_args=["--parameter-overrides", f"StopExecutionsPerSecond={STOP_RATE}"]
    ) as running:
        yield running


@pytest.fixture(scope="module")
def aws_environment(stack: StackProcess) -> dict[str, str]:
    return operator_aws_environment(stack)


def client(stack: StackProcess, service: str) -> Any:
    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=stack.state["awsEndpoint"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def cancel_service(environment: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args], env=environment, capture_output=True, text=True, timeout=120, check=False
    )


def status(environment: dict[str, str]) -> dict[str, Any]:
    run = cancel_service(environment, "status", "--stack", STACK_NAME, "--json")
    assert run.returncode == 0, run.stderr
    report: dict[str, Any] = json.loads(run.stdout)
    return report


def stop_event(execution_arn: str, message_id: str, requested_by: str = "system:bulk") -> str:
    """A Message Cancel Requested event, as the rule delivers it to a lane."""
    return json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Message Cancel Requested",
            "source": "app.messages",
            "account": "123456789012",
            "time": "2026-11-24T12:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {
                "messageId": message_id,
                "projectId": "k57operator",
                "conversationId": "conv_a",
                "executionArn": execution_arn,
                "requestedBy": requested_by,
                "reason": "bulk_request",
                "requestedAt": "2026-11-24T12:00:00.000Z",
                "requestId": "bulk-operator-test",
            },
        }
    )


def send_all(sqs: Any, url: str, bodies: list[str]) -> None:
    for start in range(0, len(bodies), 10):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(index), "MessageBody": body}
                for index, body in enumerate(bodies[start : start + 10])
            ],
        )


def test_stack_names_the_local_stack_its_queues_and_its_bus(aws_environment: dict[str, str]) -> None:
    report = status(aws_environment)

    assert report["stack"] == STACK_NAME
    assert report["stopExecutionsPerSecond"] == STOP_RATE
    assert [lane for lane in report["lanes"] if lane["paced"]], report
    assert all(
        queue["name"].startswith(f"{STACK_NAME}-") for queue in report["lanes"] + report["deadLetterQueues"]
    )


def test_a_bulk_backlog_shows_its_depth_and_time_left(
    stack: StackProcess, aws_environment: dict[str, str]
) -> None:
    (bulk_lane,) = [lane for lane in status(aws_environment)["lanes"] if lane["paced"]]
    agent = stand_in_agent_arn(STACK_NAME)
    # Stops of executions that no longer exist: the stopper drains them at the lane's pace.
    gone = [
        stop_event(f"{agent.replace(':stateMachine:', ':execution:')}:gone-{index}", f"gone{index}")
        for index in range(BACKLOG)
    ]
    send_all(client(stack, "sqs"), bulk_lane["url"], gone)

    (lane,) = [lane for lane in status(aws_environment)["lanes"] if lane["name"] == bulk_lane["name"]]

    queued = lane["waiting"] + lane["inFlight"] + lane["delayed"]
    # A few may be stopped already, at STOP_RATE per second.
    assert BACKLOG - 30 <= queued <= BACKLOG
    assert lane["timeLeftSeconds"] == queued / STOP_RATE
    human = cancel_service(aws_environment, "status", "--stack", STACK_NAME)
    assert human.returncode == 0, human.stderr
    assert f"left at {STOP_RATE} stops/s" in human.stdout
    assert "m " in human.stdout.split("bulk lane: ", 1)[1].split(" left", 1)[0]  # minutes: e.g. "4m 58s"
    client(stack, "sqs").purge_queue(QueueUrl=bulk_lane["url"])  # the stops ahead of the next test


def test_dead_letters_go_back_to_their_lane_and_their_agents_are_stopped(
    stack: StackProcess, aws_environment: dict[str, str]
) -> None:
    sfn, sqs = client(stack, "stepfunctions"), client(stack, "sqs")
    report = status(aws_environment)
    (dead_letters, *_) = [queue for queue in report["deadLetterQueues"] if queue["from"]]
    executions = [
        sfn.start_execution(
            stateMachineArn=stand_in_agent_arn(STACK_NAME), name=f"dead-{uuid.uuid4().hex[:8]}"
        )["executionArn"]
        for _ in range(2)
    ]
    # A user's Stop whose stops failed on every attempt (here: put where its lane sets them aside).
    send_all(
        sqs,
        dead_letters["url"],
        [
            stop_event(arn, f"dead{index}", "user_2demoOwner0000000000000")
            for index, arn in enumerate(executions)
        ],
    )
    assert [
        q["messages"] for q in status(aws_environment)["deadLetterQueues"] if q["url"] == dead_letters["url"]
    ] == [2]

    dry = cancel_service(aws_environment, "redrive", "--stack", STACK_NAME, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would move 2 message(s) from {dead_letters['name']}" in dry.stdout
    assert all(sfn.describe_execution(executionArn=arn)["status"] == "RUNNING" for arn in executions)

    moved = cancel_service(aws_environment, "redrive", "--stack", STACK_NAME)

    assert moved.returncode == 0, moved.stderr
    assert f"moved 2 message(s) from {dead_letters['name']} to {dead_letters['from'][0]}" in moved.stdout
    assert [
        q["messages"] for q in status(aws_environment)["deadLetterQueues"] if q["url"] == dead_letters["url"]
    ] == [0]
    assert wait_until(
        lambda: all(sfn.describe_execution(executionArn=arn)["status"] == "ABORTED" for arn in executions),
        timeout=60,
    )
