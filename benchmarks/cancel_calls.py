"""The AWS calls one cancel of the benchmark project makes, each as one plain boto3 call: what
`cancel_latency.py` runs one at a time and all in flight, to compare the handler with."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from stand_in_aws import AWS_CREDENTIALS, OWNER, PROJECT_ID, TABLE_NAMES, bus_name

PUT_EVENTS_BATCH = 10  # PutEvents' own limit


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CancelCalls:
    """The AWS calls one cancel of the project makes, each as one plain boto3 call."""

    def __init__(self, dynamodb: Any, events: Any) -> None:
        self._dynamodb = dynamodb
        self._events = events
        self._bus = bus_name()
        self.request_id = str(uuid.uuid4())
        self.requested_at = utc_now()

    def read_project(self) -> None:
        item = self._dynamodb.get_item(
            TableName=TABLE_NAMES["ProjectsTable"],
            Key={"id": {"S": PROJECT_ID}},
            ProjectionExpression="id, ownerId, orgId",
        ).get("Item")
        if item is None or item["ownerId"]["S"] != OWNER:
            raise RuntimeError("the benchmark project is missing")

    def query_page(
        self, start_key: dict[str, Any] | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        request: dict[str, Any] = {
            "TableName": TABLE_NAMES["MessagesTable"],
            "IndexName": "byProjectAndStatus",
            "KeyConditionExpression": "projectId = :project AND #status = :processing",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":project": {"S": PROJECT_ID}, ":processing": {"S": "processing"}},
            "ProjectionExpression": "id, projectId, conversationId, executionArn",
        }
        if start_key:
            request["ExclusiveStartKey"] = start_key
        response = self._dynamodb.query(**request)
        return response.get("Items", []), response.get("LastEvaluatedKey")

    def publish(self, batch: Sequence[dict[str, Any]]) -> None:
        entries = [
            {
                "EventBusName": self._bus,
                "Source": "app.messages",
                "DetailType": "Message Cancel Requested",
                "Detail": json.dumps(
                    {
                        "messageId": item["id"]["S"],
                        "projectId": item["projectId"]["S"],
                        "conversationId": item["conversationId"]["S"],
                        "executionArn": item["executionArn"]["S"],
                        "requestedBy": OWNER,
                        "reason": "user_request",
                        "requestedAt": self.requested_at,
                        "requestId": self.request_id,
                    },
                    separators=(",", ":"),
                ),
            }
            for item in batch
        ]
        if self._events.put_events(Entries=entries)["FailedEntryCount"]:
            raise RuntimeError("EventBridge refused a cancel event")

    def write(self, item: dict[str, Any]) -> bool:
        try:
            self._dynamodb.update_item(
                TableName=TABLE_NAMES["MessagesTable"],
                Key={"id": item["id"]},
                UpdateExpression="SET #status = :cancelled, updatedAt = :at, cancelledAt = :at,"
                " cancelledBy = :by, cancelReason = :reason",
                ConditionExpression="#status = :processing",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":cancelled": {"S": "cancelled"},
                    ":processing": {"S": "processing"},
                    ":at": {"S": self.requested_at},
                    ":by": {"S": OWNER},
                    ":reason": {"S": "user_request"},
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True


def batches(items: Sequence[dict[str, Any]]) -> list[Sequence[dict[str, Any]]]:
    return [items[start : start + PUT_EVENTS_BATCH] for start in range(0, len(items), PUT_EVENTS_BATCH)]


def cancel_clients(endpoint_url: str, config: Config) -> tuple[Any, Any]:
    """A DynamoDB and an EventBridge client, as plain as boto3 makes them but for `config`."""
    region = AWS_CREDENTIALS["AWS_REGION"]
    return (
        boto3.client("dynamodb", endpoint_url=endpoint_url, region_name=region, config=config),
        boto3.client("events", endpoint_url=endpoint_url, region_name=region, config=config),
    )
