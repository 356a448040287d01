"""The local stack runs a function's DynamoDB stream event source as Lambda does (the template's
filter, batches, redelivery from the first reported failure), and the whole service keeps its age
index from the messages table's stream: the bulk by age finds what the stream entered."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from cancel_service.models import utc_timestamp
from devstack.stack import DevStack
from support.local_stack import StackProcess, small_template, stack_of_template, table_keyed_by_id, wait_until

TEMPLATE = small_template(
    table_keyed_by_id("StreamedTable", streamed=True)
    + table_keyed_by_id("StreamSeenTable")
    + """
ChangeFunction:
  Type: AWS::Serverless::Function
  Properties:
    Handler: handlers.changed
    Events:
      Changed:
        Type: DynamoDB
        Properties:
          Stream: !GetAtt StreamedTable.StreamArn
          StartingPosition: TRIM_HORIZON
          BatchSize: 3
          FunctionResponseTypes: [ReportBatchItemFailures]
          FilterCriteria:
            Filters:
              - Pattern: '{"dynamodb": {"NewImage": {"kind": {"S": ["wanted"]}}}}'
""",
    environment={"SEEN_TABLE": "!Ref StreamSeenTable"},
)

HANDLERS = """
import os
import boto3

def changed(event, context):
    dynamodb = boto3.client("dynamodb")
    failures = []
    for record in event["Records"]:
        key = record["dynamodb"]["Keys"]["id"]["S"]
        seen = dynamodb.update_item(
            TableName=os.environ["SEEN_TABLE"], Key={"id": {"S": key}},
            UpdateExpression="ADD deliveries :one", ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="ALL_NEW",
        )["Attributes"]
        if key == "flaky" and seen["deliveries"]["N"] == "1":
            failures.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
    return {"batchItemFailures": failures[:1]}
"""


@pytest.fixture(scope="module")
def small_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    with stack_of_template(tmp_path_factory.mktemp("template"), TEMPLATE, HANDLERS) as running:
        yield running


def test_stream_records_reach_the_function_filtered_and_again_from_a_reported_failure(small_stack):
    dynamodb = small_stack.client("dynamodb")
    table, seen = small_stack.table_name("StreamedTable"), small_stack.table_name("StreamSeenTable")
    for key, kind in [
        ("a", "wanted"),
        ("skip", "other"),
        ("flaky", "wanted"),
        ("c", "wanted"),
        ("d", "wanted"),
    ]:
        dynamodb.put_item(TableName=table, Item={"id": {"S": key}, "kind": {"S": kind}})

    def deliveries() -> dict[str, int]:
        items = dynamodb.scan(TableName=seen)["Items"]
        return {item["id"]["S"]: int(item["deliveries"]["N"]) for item in items}

    assert wait_until(lambda: set(deliveries()) == {"a", "flaky", "c", "d"}, timeout=20)
    time.sleep(1.5)  # a later redelivery would show here
    # The batch came again from "flaky" on (its checkpoint): "a", before it, once; "skip" never.
    counts = deliveries()
    assert counts["flaky"] == 2
    assert counts["a"] == 1


# --- the whole service ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack() -> Iterator[StackProcess]:
    with StackProcess() as running:
        yield running


def client(stack: StackProcess, service: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=stack.state["awsEndpoint"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def table(stack: StackProcess, logical_id: str) -> str:
    return f"{stack.state['stackName']}-{logical_id}"


def test_the_bulk_by_age_cancels_what_the_stream_entered_in_the_age_index(stack):
    dynamodb, events = client(stack, "dynamodb"), client(stack, "events")
    messages, ages = table(stack, "MessagesTable"), table(stack, "AgeIndexTable")
    long_ago = utc_timestamp(datetime.now(UTC) - timedelta(hours=3))
    stuck = [f"age-stuck-{n}" for n in range(12)]
    for message_id in [*stuck, "age-done"]:
        dynamodb.put_item(
            TableName=messages,
            Item={
                "id": {"S": message_id},
                "projectId": {"S": "age-project"},
                "conversationId": {"S": "conv_1"},
                "status": {"S": "processing"},
                "updatedAt": {"S": long_ago},
            },
        )
    dynamodb.update_item(
        TableName=messages,
        Key={"id": {"S": "age-done"}},
        UpdateExpression="SET #status = :completed",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":completed": {"S": "completed"}},
    )

    def indexed() -> set[str]:
        return {item["id"]["S"] for item in dynamodb.scan(TableName=ages)["Items"]}

    assert wait_until(lambda: set(stuck) <= indexed() and "age-done" not in indexed(), timeout=30)

    bus = next(b["Name"] for b in events.list_event_buses()["EventBuses"] if b["Name"].endswith("-cancel"))
    events.put_events(
        Entries=[
            {
                "EventBusName": bus,
                "Source": "app.operator",
                "DetailType": "Bulk Cancel Requested",
                "Detail": json.dumps({"olderThanSeconds": 3600, "bulkId": "local-age"}),
            }
        ]
    )

    def status(message_id: str) -> str:
        item = dynamodb.get_item(TableName=messages, Key={"id": {"S": message_id}})["Item"]
        return str(item["status"]["S"])

    assert wait_until(lambda: {status(message_id) for message_id in stuck} == {"cancelled"}, timeout=60)
    assert status("age-done") == "completed"
    # Cancelled messages left processing: the stream took them out of the index.
    assert wait_until(lambda: not set(stuck) & indexed(), timeout=30)
