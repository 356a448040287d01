"""Messages table: read processing messages through indexes, move them on with conditional writes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from cancel_service.adapters.dynamodb import ConditionalUpdate, update_if
from cancel_service.errors import DependencyUnavailable
from cancel_service.models import (
    CANCELLED,
    FAILED,
    PROCESSING,
    PROJECT_ID_PATTERN,
    CancelRequest,
    ExecutionMessage,
    MessagePage,
    PageKey,
    ProcessingMessage,
    WriteOutcome,
)
from cancel_service.observability import logger, tracer

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

# Keyed (projectId, status): a project's processing messages and nothing else.
BY_PROJECT_AND_STATUS = "byProjectAndStatus"
# Keyed executionArn, sparse: only messages that an agent execution works on are in it.
BY_EXECUTION_ARN = "byExecutionArn"
_PROJECTION = "id, projectId, conversationId, executionArn"
_PROJECT_ID = re.compile(PROJECT_ID_PATTERN)
# BatchGetItem's most keys per call.
MAX_KEYS_PER_BATCH_GET = 100


class _IndexQuery(NamedTuple):
    """A query of processing messages: the index and its key condition (`:processing` is bound)."""

    index_name: str
    key_condition: str


_PROCESSING_IN_PROJECT = _IndexQuery(BY_PROJECT_AND_STATUS, "projectId = :project AND #status = :processing")


def to_message(item: dict[str, AttributeValueTypeDef]) -> ProcessingMessage:
    arn = item.get("executionArn", {}).get("S")
    return ProcessingMessage(
        id=item["id"]["S"],
        project_id=item["projectId"]["S"],
        conversation_id=item.get("conversationId", {}).get("S", ""),
        execution_arn=arn or None,
    )


def readable(item: dict[str, AttributeValueTypeDef]) -> bool:
    """The item is a message as the contract has it: a project id of the contract's form, and
    string attributes where strings are expected."""
    project_id = item.get("projectId", {}).get("S")
    return (
        project_id is not None
        and _PROJECT_ID.fullmatch(project_id) is not None
        and all("S" in item[name] for name in ("conversationId", "executionArn") if name in item)
    )


class MessagesTable:
    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self._table_name = table_name
        self._client = client

    def processing_in_project_page(
        self, project_id: str, start_key: PageKey | None, limit: int | None = None
    ) -> MessagePage:
        return self._page(_PROCESSING_IN_PROJECT, {":project": {"S": project_id}}, start_key, limit)

    @tracer.capture_method
    def _page(
        self,
        query: _IndexQuery,
        values: dict[str, AttributeValueTypeDef],
        start_key: PageKey | None,
        limit: int | None,
    ) -> MessagePage:
        request: dict[str, Any] = {
            "TableName": self._table_name,
            "IndexName": query.index_name,
            "KeyConditionExpression": query.key_condition,
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":processing": {"S": PROCESSING}, **values},
            "ProjectionExpression": _PROJECTION,
        }
        if start_key:
            request["ExclusiveStartKey"] = start_key
        if limit is not None:
            request["Limit"] = limit
        try:
            response = self._client.query(**request)
        except (ClientError, BotoCoreError) as error:
            raise DependencyUnavailable("dynamodb") from error
        next_key = response.get("LastEvaluatedKey")
        items = response.get("Items", [])
        unreadable = tuple(item["id"]["S"] for item in items if not readable(item))
        if unreadable:
            logger.warning("unreadable messages skipped", extra={"message_ids": unreadable})
        return MessagePage(
            messages=tuple(to_message(item) for item in items if readable(item)),
            next_key={name: {"S": value["S"]} for name, value in next_key.items()} if next_key else None,
            unreadable=unreadable,
        )

    @tracer.capture_method
    def current(self, message_ids: Sequence[str]) -> dict[str, ExecutionMessage]:
        """The messages as they are now (at most MAX_KEYS_PER_BATCH_GET, strongly consistent), by
        id, with their status and `cancelRequestId`; a missing or unreadable one is left out."""
        keys: list[dict[str, AttributeValueTypeDef]] = [
            {"id": {"S": message_id}} for message_id in message_ids
        ]
        found: dict[str, ExecutionMessage] = {}
        while keys:
            try:
                response = self._client.batch_get_item(
                    RequestItems={
                        self._table_name: {
                            "Keys": keys,
                            "ConsistentRead": True,
                            "ProjectionExpression": f"{_PROJECTION}, #status, cancelRequestId",
                            "ExpressionAttributeNames": {"#status": "status"},
                        }
                    }
                )
            except (ClientError, BotoCoreError) as error:
                raise DependencyUnavailable("dynamodb") from error
            for item in response.get("Responses", {}).get(self._table_name, []):
                if readable(item) and "S" in item.get("status", {}):
                    found[item["id"]["S"]] = ExecutionMessage(
                        to_message(item), item["status"]["S"], item.get("cancelRequestId", {}).get("S")
                    )
            unprocessed = response.get("UnprocessedKeys", {})
            keys = list(unprocessed[self._table_name]["Keys"]) if self._table_name in unprocessed else []
        return found

    @tracer.capture_method
    def of_execution(self, execution_arn: str) -> list[ExecutionMessage]:
        """The message(s) an agent execution works on (normally one), whatever their status."""
        pages = self._client.get_paginator("query").paginate(
            TableName=self._table_name,
            IndexName=BY_EXECUTION_ARN,
            KeyConditionExpression="executionArn = :arn",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":arn": {"S": execution_arn}},
            ProjectionExpression=f"{_PROJECTION}, #status",
        )
        try:
            return [
                ExecutionMessage(to_message(item), item["status"]["S"])
                for page in pages
                for item in page.get("Items", [])
            ]
        except (ClientError, BotoCoreError) as error:
            raise DependencyUnavailable("dynamodb") from error

    @tracer.capture_method
    def mark_failed(self, message_id: str, reason: str, at: str) -> bool:
        """Move a message to failed if it is still processing; False when it had already moved on."""
        return self._update_if(
            message_id,
            "SET #status = :failed, updatedAt = :at, failedAt = :at, failureReason = :reason",
            "#status = :processing",
            {
                ":failed": {"S": FAILED},
                ":processing": {"S": PROCESSING},
                ":at": {"S": at},
                ":reason": {"S": reason},
            },
        ).applied

    @tracer.capture_method
    def mark_agent_stopped(self, message_id: str, at: str) -> str | None:
        """Record, once, when a cancelled message's agent was confirmed stopped.

        Returns the message's `cancelledAt`, or None when it is not cancelled or already recorded.
        """
        update = self._update_if(
            message_id,
            "SET agentStoppedAt = :at",
            "#status = :cancelled AND attribute_not_exists(agentStoppedAt)",
            {":cancelled": {"S": CANCELLED}, ":at": {"S": at}},
            return_new=True,
        )
        return update.item.get("cancelledAt", {}).get("S") if update.applied else None

    def _update_if(
        self,
        message_id: str,
        update: str,
        condition: str,
        values: dict[str, AttributeValueTypeDef],
        *,
        return_new: bool = False,
    ) -> ConditionalUpdate:
        """A conditional update (whose condition reads `#status`); the item after it comes back
        only with `return_new` (the cancel writes, thousands in a bulk, need none of it)."""
        return update_if(
            self._client,
            {
                "TableName": self._table_name,
                "Key": {"id": {"S": message_id}},
                "UpdateExpression": update,
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": values,
                "ReturnValues": "ALL_NEW" if return_new else "NONE",
            },
            lambda: DependencyUnavailable("dynamodb"),
        )

    def cancel_one(self, message: ProcessingMessage, request: CancelRequest) -> WriteOutcome:
        """Move the message to cancelled if it is still processing; a failed write is an outcome,
        not an error, so that one failure does not hide the outcomes of the others."""
        try:
            written = self._update_if(
                message.id,
                "SET #status = :cancelled, updatedAt = :at, cancelledAt = :at,"
                " cancelledBy = :by, cancelReason = :reason, cancelRequestId = :request",
                "#status = :processing",
                {
                    ":cancelled": {"S": CANCELLED},
                    ":processing": {"S": PROCESSING},
                    ":at": {"S": request.requested_at},
                    ":by": {"S": request.requested_by},
                    ":reason": {"S": request.reason},
                    ":request": {"S": request.request_id},
                },
            )
        except DependencyUnavailable as error:
            # One failed write must not stop the others: the caller reports it after all of them.
            cause = error.__cause__
            code = cause.response.get("Error", {}).get("Code") if isinstance(cause, ClientError) else None
            logger.warning(
                "cancel write failed",
                extra={"message_id": message.id, "error": code or type(cause).__name__},
            )
            return WriteOutcome.FAILED
        if written.applied or _cancelled_by(written.item, request):
            return WriteOutcome.CANCELLED
        return WriteOutcome.ALREADY_FINISHED  # completed, failed or cancelled by another request


def _cancelled_by(item: dict[str, AttributeValueTypeDef], request: CancelRequest) -> bool:
    """The item was cancelled by this very request: an earlier attempt of this write applied."""
    return (
        item.get("status", {}).get("S") == CANCELLED
        and item.get("cancelRequestId", {}).get("S") == request.request_id
    )
