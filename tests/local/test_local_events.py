"""The local stack's EventBridge delivery, on a small template of its own: rules from function
event sources, matched by moto's EventBridge pattern matcher on the right bus, delivered to warm
function processes; Step Functions status changes put on the default bus."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest

from devstack.stack import DevStack
from support.local_stack import small_template, stack_bus, stack_of_template, table_keyed_by_id, wait_until

TEMPLATE = small_template(
    stack_bus("bus")
    + table_keyed_by_id("SeenTable")
    + """
StopFunction:
  Type: AWS::Serverless::Function
  Properties:
    Handler: handlers.stop
    Events:
      Cancel:
        Type: EventBridgeRule
        Properties:
          EventBusName: !Ref Bus
          Pattern:
            source: [app.messages]
            detail-type: [Message Cancel Requested]
            detail:
              executionArn: [{exists: true}]
StatusFunction:
  Type: AWS::Serverless::Function
  Properties:
    Handler: handlers.record
    Events:
      Ended:
        Type: EventBridgeRule
        Properties:
          Pattern:
            source: [aws.states]
            detail-type: [Step Functions Execution Status Change]
            detail:
              status: [ABORTED]
""",
    environment={"SEEN_TABLE": "!Ref SeenTable"},
)

HANDLERS = """
import os
import boto3

def stop(event, context):
    boto3.client("stepfunctions").stop_execution(
        executionArn=event["detail"]["executionArn"], error="MessageCancelled", cause="test"
    )
    return {"stopped": event["detail"]["executionArn"]}

def record(event, context):
    boto3.client("dynamodb").put_item(
        TableName=os.environ["SEEN_TABLE"],
        Item={"id": {"S": event["detail"]["executionArn"]}, "status": {"S": event["detail"]["status"]}},
    )
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    with stack_of_template(tmp_path_factory.mktemp("template"), TEMPLATE, HANDLERS) as running:
        yield running


def _start_agent(stack: DevStack) -> str:
    assert stack.agent_state_machine, "the stand-in agent (devstack/agent/*.asl.json) is created"
    return stack.client("stepfunctions").start_execution(
        stateMachineArn=stack.agent_state_machine, name=uuid.uuid4().hex, input="{}"
    )["executionArn"]


def test_rules_and_buses_come_from_the_template(stack):
    events = stack.client("events")
    bus = "cancel-service-local-bus"
    rules = events.list_rules(EventBusName=bus)["Rules"]
    assert [json.loads(rule["EventPattern"])["detail-type"] for rule in rules] == [
        ["Message Cancel Requested"]
    ]
    default_rules = events.list_rules()["Rules"]
    assert any(json.loads(rule["EventPattern"])["source"] == ["aws.states"] for rule in default_rules)


def test_matching_events_reach_the_function_and_others_do_not(stack):
    sfn, events = stack.client("stepfunctions"), stack.client("events")
    stopped, untouched, on_other_bus = _start_agent(stack), _start_agent(stack), _start_agent(stack)

    def cancel(arn: str | None, bus: str = "cancel-service-local-bus", source: str = "app.messages") -> dict:
        detail = {"messageId": "m1", "projectId": "p1"} | ({"executionArn": arn} if arn else {})
        return {"Source": source, "DetailType": "Message Cancel Requested", "Detail": json.dumps(detail),
                "EventBusName": bus}  # fmt: skip

    result = events.put_events(
        Entries=[
            cancel(stopped),
            cancel(None),  # no executionArn: the pattern's `exists` does not match
            cancel(untouched, source="someone.else"),  # wrong source
            cancel(on_other_bus, bus="default"),  # right event, wrong bus
        ]
    )
    assert result["FailedEntryCount"] == 0

    assert wait_until(lambda: sfn.describe_execution(executionArn=stopped)["status"] == "ABORTED", timeout=15)
    time.sleep(1.5)
    assert sfn.describe_execution(executionArn=untouched)["status"] == "RUNNING"
    assert sfn.describe_execution(executionArn=on_other_bus)["status"] == "RUNNING"


def test_step_functions_status_changes_reach_the_default_bus(stack):
    sfn, dynamodb = stack.client("stepfunctions"), stack.client("dynamodb")
    arn = _start_agent(stack)
    time.sleep(0.5)
    sfn.stop_execution(executionArn=arn)

    def seen() -> dict | None:
        return dynamodb.get_item(TableName="cancel-service-local-SeenTable", Key={"id": {"S": arn}}).get(
            "Item"
        )

    assert wait_until(lambda: seen() is not None, timeout=15), (
        "no ABORTED status-change event reached StatusFunction"
    )
    item = seen()
    assert item is not None
    assert item["status"]["S"] == "ABORTED"
