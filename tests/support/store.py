"""The AWS account of one test (moto, in-process or a moto server): the template's tables and a
bus whose events are captured in a queue, with helpers to seed and inspect them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from support.constants import OWNER, PROJECT, TABLE_NAMES


@dataclass
class Store:
    """The tables and the captured bus of one account."""

    dynamodb: Any
    events: Any
    sqs: Any
    queue_url: str
    table_names: dict[str, str] = field(default_factory=lambda: dict(TABLE_NAMES))

    def put_project(
        self, project_id: str = PROJECT, owner_id: str = OWNER, org_id: str | None = None
    ) -> None:
        item = {"id": {"S": project_id}, "ownerId": {"S": owner_id}}
        if org_id:
            item["orgId"] = {"S": org_id}
        self.dynamodb.put_item(TableName=self.table_names["ProjectsTable"], Item=item)

    def put_message(
        self,
        message_id: str,
        *,
        project_id: str = PROJECT,
        conversation_id: str = "conv_1",
        status: str = "processing",
        execution_arn: str | None = None,
        updated_at: str = "2026-11-24T12:00:00.000Z",
        **attributes: str,
    ) -> None:
        """A message; `attributes` are further string attributes (`cancelledAt=...`)."""
        item = {
            "id": {"S": message_id},
            "projectId": {"S": project_id},
            "conversationId": {"S": conversation_id},
            "status": {"S": status},
            "createdAt": {"S": "2026-11-24T11:59:00.000Z"},
            "updatedAt": {"S": updated_at},
            **{name: {"S": value} for name, value in attributes.items()},
        }
        if execution_arn:
            item["executionArn"] = {"S": execution_arn}
        self.dynamodb.put_item(TableName=self.table_names["MessagesTable"], Item=item)

    def message(self, message_id: str) -> dict[str, str]:
        """The message's string attributes."""
        item = self.dynamodb.get_item(
            TableName=self.table_names["MessagesTable"], Key={"id": {"S": message_id}}
        )["Item"]
        return {name: value["S"] for name, value in item.items() if "S" in value}

    def status(self, message_id: str) -> str:
        return self.message(message_id)["status"]

    def published(self) -> list[dict[str, Any]]:
        """Every event the bus delivered to the capture queue since the last call."""
        events = []
        while batch := self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for message in batch:
                events.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return events


def bus_with_capture_queue(events: Any, sqs: Any, bus_name: str, queue_name: str) -> str:
    """Create the bus and a queue that receives every event published under app.messages."""
    events.create_event_bus(Name=bus_name)
    queue_url: str = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="capture", EventBusName=bus_name, EventPattern=json.dumps({"source": ["app.messages"]})
    )
    events.put_targets(Rule="capture", EventBusName=bus_name, Targets=[{"Id": "queue", "Arn": queue_arn}])
    return queue_url
