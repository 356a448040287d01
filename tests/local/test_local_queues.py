"""The local stack's SQS event source mapping, on a small template of its own: a rule on a bus
delivering to a queue, and a function fed by that queue in batches, with at most
MaximumConcurrency batches in flight, deleting what succeeded and letting failures come back
until the queue's redrive policy sets them aside."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.lambdas import Invocation
from devstack.sqs_source import succeeded_messages
from devstack.stack import DevStack
from support.local_stack import small_template, stack_bus, stack_of_template, table_keyed_by_id, wait_until

TEMPLATE = small_template(
    stack_bus("work")
    + table_keyed_by_id("WorkSeenTable")
    + """
WorkRule:
  Type: AWS::Events::Rule
  Properties:
    EventBusName: !Ref Bus
    EventPattern:
      source: [app.work]
    Targets:
      - Id: WorkQueue
        Arn: !GetAtt WorkQueue.Arn
WorkQueue:
  Type: AWS::SQS::Queue
  Properties:
    # Longer than a batch takes here (a cold container included), short enough to see retries.
    VisibilityTimeout: 8
    RedrivePolicy:
      deadLetterTargetArn: !GetAtt WorkDeadLetterQueue.Arn
      maxReceiveCount: 2
WorkDeadLetterQueue:
  Type: AWS::SQS::Queue
WorkFunction:
  Type: AWS::Serverless::Function
  Properties:
    Handler: handlers.work
    Environment:
      Variables:
        SEEN_TABLE: !Ref WorkSeenTable
    Events:
      Work:
        Type: SQS
        Properties:
          Queue: !GetAtt WorkQueue.Arn
          BatchSize: 5
          MaximumBatchingWindowInSeconds: 1
          FunctionResponseTypes: [ReportBatchItemFailures]
          ScalingConfig:
            MaximumConcurrency: 2
"""
)

# Each invocation records its batch (the `key` of each event), when it ran, and the envelope.
HANDLERS = """
import json
import os
import time

import boto3

def work(event, context):
    started = time.time()
    records = [(record["messageId"], json.loads(record["body"])) for record in event["Records"]]
    details = [body["detail"] for _, body in records]
    if any(detail.get("crash") for detail in details):
        raise RuntimeError("the whole invocation fails")
    time.sleep(max(float(detail.get("sleep", 0)) for detail in details))
    boto3.client("dynamodb").put_item(
        TableName=os.environ["SEEN_TABLE"],
        Item={
            "id": {"S": context.aws_request_id},
            "keys": {"S": json.dumps([detail["key"] for detail in details])},
            "accounts": {"S": json.dumps(sorted({body.get("account") for _, body in records}))},
            "started": {"N": str(started)},
            "ended": {"N": str(time.time())},
        },
    )
    return {"batchItemFailures": [
        {"itemIdentifier": message_id} for message_id, body in records if body["detail"].get("fail")
    ]}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    with stack_of_template(tmp_path_factory.mktemp("template"), TEMPLATE, HANDLERS) as running:
        yield running


def _put(stack: DevStack, *details: dict[str, Any]) -> None:
    entries = [
        {
            "Source": "app.work",
            "DetailType": "Work",
            "Detail": json.dumps(d),
            "EventBusName": "cancel-service-local-work",
        }
        for d in details
    ]
    assert stack.client("events").put_events(Entries=entries)["FailedEntryCount"] == 0


def _invocations(stack: DevStack, keys: set[str]) -> list[dict[str, Any]]:
    """The recorded invocations whose batch holds any of `keys` (a Scan: a handful of test items)."""
    items = stack.client("dynamodb").scan(TableName="cancel-service-local-WorkSeenTable")["Items"]
    found = [
        {
            "keys": json.loads(item["keys"]["S"]),
            "accounts": json.loads(item["accounts"]["S"]),
            "started": float(item["started"]["N"]),
            "ended": float(item["ended"]["N"]),
        }
        for item in items
    ]
    return [invocation for invocation in found if keys & set(invocation["keys"])]


def _dead_letters(stack: DevStack) -> list[dict[str, Any]]:
    sqs = stack.client("sqs")
    url = sqs.get_queue_url(QueueName="cancel-service-local-WorkDeadLetterQueue")["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
        "Messages", []
    )
    return [json.loads(message["Body"])["detail"] for message in messages]


def _keys(count: int) -> list[str]:
    prefix = uuid.uuid4().hex[:8]
    return [f"{prefix}-{index}" for index in range(count)]


def test_events_reach_the_function_through_the_queue_whole_and_in_batches(stack):
    keys = _keys(5)
    for key in keys:  # one at a time: the batching window gathers them
        _put(stack, {"key": key})
        time.sleep(0.15)

    assert wait_until(
        lambda: sorted(k for i in _invocations(stack, set(keys)) for k in i["keys"]) == keys, timeout=20
    )
    invocations = _invocations(stack, set(keys))
    assert len(invocations) < len(keys)  # batched, not one invocation per event
    assert {account for invocation in invocations for account in invocation["accounts"]} == {"123456789012"}


def test_at_most_maximum_concurrency_batches_are_in_flight(stack):
    keys = _keys(12)
    _put(stack, *({"key": key, "sleep": 0.5} for key in keys[:10]))
    _put(stack, *({"key": key, "sleep": 0.5} for key in keys[10:]))

    assert wait_until(lambda: sum(len(i["keys"]) for i in _invocations(stack, set(keys))) == 12, timeout=30)
    invocations = _invocations(stack, set(keys))
    assert max(len(invocation["keys"]) for invocation in invocations) <= 5  # BatchSize
    moments = sorted({invocation["started"] for invocation in invocations})
    in_flight = [sum(i["started"] <= moment < i["ended"] for i in invocations) for moment in moments]
    assert max(in_flight) == 2  # MaximumConcurrency, and used


def test_only_the_reported_failures_come_back_then_go_to_the_dead_letter_queue(stack):
    handled, failing = _keys(2)
    _put(stack, {"key": handled}, {"key": failing, "fail": True})

    assert wait_until(lambda: any(d["key"] == failing for d in _dead_letters(stack)), timeout=30)
    invocations = _invocations(stack, {handled, failing})
    assert sum(handled in invocation["keys"] for invocation in invocations) == 1  # deleted at once
    assert sum(failing in invocation["keys"] for invocation in invocations) == 2  # maxReceiveCount


def test_a_failed_invocation_deletes_none_of_its_records(stack):
    crashing = _keys(1)[0]
    _put(stack, {"key": crashing, "crash": True})

    assert wait_until(lambda: any(d["key"] == crashing for d in _dead_letters(stack)), timeout=30)


def _messages(*ids: str) -> list[dict[str, Any]]:
    return [{"MessageId": message_id, "ReceiptHandle": f"receipt-{message_id}"} for message_id in ids]


@pytest.mark.parametrize(
    ("result", "error", "reports", "deleted"),
    [
        ({"batchItemFailures": []}, None, True, ["a", "b", "c"]),
        (None, None, True, ["a", "b", "c"]),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, None, True, ["a", "c"]),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, None, False, ["a", "b", "c"]),
        ({"batchItemFailures": [{"itemIdentifier": "zz"}]}, None, True, []),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, None, True, []),
        ({"batchItemFailures": [{}]}, None, True, []),
        (None, {"errorType": "RuntimeError", "errorMessage": "boom"}, True, []),
    ],
    ids=[
        "none-failed",
        "no-answer",
        "one-failed",
        "not-reporting",
        "unknown-id",
        "empty-id",
        "no-id",
        "error",
    ],
)
def test_which_records_lambda_deletes(result, error, reports, deleted):
    invocation = Invocation(request_id="r", result=result, error=error)

    done = succeeded_messages(_messages("a", "b", "c"), invocation, reports_item_failures=reports)

    assert [message["MessageId"] for message in done] == deleted
