"""Messages table: read processing messages through indexes, cancel them with conditional writes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from cancel_service.adapters.aws import UPDATE_CONCURRENCY
from cancel_service.errors import DependencyUnavailable
from cancel_service.models import CancelRequest, ProcessingMessage
from cancel_service.observability import logger, tracer

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

# Keyed (projectId, status): a project's processing messages and nothing else.
BY_PROJECT_AND_STATUS = "byProjectAndStatus"
PROCESSING = "processing"
CANCELLED = "cancelled"
_PROJECTION = "id, projectId, conversationId, executionArn"


class WriteOutcome(Enum):
    CANCELLED = "cancelled"
    ALREADY_FINISHED = "already_finished"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class CancelWrites:
    """Outcome of the conditional writes, by message id."""

    cancelled_ids: tuple[str, ...]
    already_finished_ids: tuple[str, ...]
    failed_ids: tuple[str, ...]


def _to_message(item: dict[str, AttributeValueTypeDef]) -> ProcessingMessage:
    arn = item.get("executionArn", {}).get("S")
    return ProcessingMessage(
        id=item["id"]["S"],
        project_id=item["projectId"]["S"],
        conversation_id=item.get("conversationId", {}).get("S", ""),
        execution_arn=arn or None,
    )


class MessagesTable:
    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self._table_name = table_name
        self._client = client

    @tracer.capture_method
    def processing_in_project(self, project_id: str) -> Iterator[ProcessingMessage]:
        """Every processing message of the project, across conversations, page by page."""
        pages = self._client.get_paginator("query").paginate(
            TableName=self._table_name,
            IndexName=BY_PROJECT_AND_STATUS,
            KeyConditionExpression="projectId = :project AND #status = :processing",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":project": {"S": project_id}, ":processing": {"S": PROCESSING}},
            ProjectionExpression=_PROJECTION,
        )
        try:
            for page in pages:
                for item in page.get("Items", []):
                    yield _to_message(item)
        except (ClientError, BotoCoreError) as error:
            raise DependencyUnavailable("dynamodb") from error

    @tracer.capture_method
    def mark_cancelled(self, messages: Sequence[ProcessingMessage], request: CancelRequest) -> CancelWrites:
        """Move each message to cancelled only if it is still processing, a bounded number at a time."""
        by_outcome: dict[WriteOutcome, list[str]] = {outcome: [] for outcome in WriteOutcome}
        with ThreadPoolExecutor(max_workers=UPDATE_CONCURRENCY) as pool:
            for message, outcome in zip(
                messages, pool.map(lambda message: self._cancel_one(message, request), messages), strict=True
            ):
                by_outcome[outcome].append(message.id)
        return CancelWrites(
            cancelled_ids=tuple(by_outcome[WriteOutcome.CANCELLED]),
            already_finished_ids=tuple(by_outcome[WriteOutcome.ALREADY_FINISHED]),
            failed_ids=tuple(by_outcome[WriteOutcome.FAILED]),
        )

    def _cancel_one(self, message: ProcessingMessage, request: CancelRequest) -> WriteOutcome:
        try:
            self._client.update_item(
                TableName=self._table_name,
                Key={"id": {"S": message.id}},
                UpdateExpression=(
                    "SET #status = :cancelled, updatedAt = :at, cancelledAt = :at,"
                    " cancelledBy = :by, cancelReason = :reason"
                ),
                ConditionExpression="#status = :processing",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":cancelled": {"S": CANCELLED},
                    ":processing": {"S": PROCESSING},
                    ":at": {"S": request.requested_at},
                    ":by": {"S": request.requested_by},
                    ":reason": {"S": request.reason},
                },
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                return WriteOutcome.ALREADY_FINISHED  # completed or failed meanwhile: leave it alone
            logger.warning("cancel write failed", extra={"message_id": message.id, "error_code": code})
            return WriteOutcome.FAILED
        except BotoCoreError as error:
            logger.warning(
                "cancel write failed", extra={"message_id": message.id, "error": type(error).__name__}
            )
            return WriteOutcome.FAILED
        return WriteOutcome.CANCELLED
