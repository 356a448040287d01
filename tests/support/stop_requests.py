"""Stop requests as the stoppers receive them: cancel events, SQS records and batches, and the
template's stop rules delivering to their queues on the test bus."""

from __future__ import annotations

import json
import uuid
from typing import Any

from devstack.delivery import EVENTBRIDGE_ENVELOPE
from devstack.sqs_source import sqs_record
from support.constants import BUS_NAME, OWNER, PROJECT
from support.events import eventbridge_event
from support.store import Store

QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:UserStopRequestsQueue"


def cancel_event(execution_arn: str, message_id: str = "m1") -> dict[str, Any]:
    return eventbridge_event(
        "Message Cancel Requested",
        {
            "messageId": message_id,
            "projectId": PROJECT,
            "conversationId": "conv_1",
            "executionArn": execution_arn,
            "requestedBy": OWNER,
            "reason": "user_request",
            "requestedAt": "2026-11-24T12:00:00.000Z",
        },
        source="app.messages",
    )


def record(body: dict[str, Any] | str) -> dict[str, Any]:
    """One SQS record as Lambda's event source mapping hands it over."""
    message = {
        "MessageId": str(uuid.uuid4()),
        "ReceiptHandle": uuid.uuid4().hex,
        "Body": body if isinstance(body, str) else json.dumps(body),
        "Attributes": {"ApproximateReceiveCount": "1"},
    }
    return sqs_record(message, QUEUE_ARN)


def batch(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def failed_ids(answer: dict[str, Any]) -> list[str]:
    return [failure["itemIdentifier"] for failure in answer["batchItemFailures"]]


def lane_queue(store: Store, template: dict[str, Any], lane: str) -> str:
    """The template's rule of a stop lane on the test bus, delivering to its queue as EventBridge
    does; the queue's URL."""
    rule = template["Resources"][f"{lane}Rule"]["Properties"]
    queue_url: str = store.sqs.create_queue(QueueName=lane)["QueueUrl"]
    queue_arn = store.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    store.events.put_rule(Name=lane, EventBusName=BUS_NAME, EventPattern=json.dumps(rule["EventPattern"]))
    store.events.put_targets(
        Rule=lane,
        EventBusName=BUS_NAME,
        Targets=[{"Id": "queue", "Arn": queue_arn, "InputTransformer": EVENTBRIDGE_ENVELOPE}],
    )
    return queue_url
