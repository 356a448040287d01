"""Projects table: who owns a project and which organization shares it; an owner's projects."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from cancel_service.errors import DependencyUnavailable
from cancel_service.models import Project
from cancel_service.observability import tracer

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Keyed ownerId: the projects of one owner, for bulk cancels by owner.
BY_OWNER = "byOwner"


class ProjectsTable:
    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self._table_name = table_name
        self._client = client

    @tracer.capture_method
    def get(self, project_id: str) -> Project | None:
        try:
            item = self._client.get_item(
                TableName=self._table_name,
                Key={"id": {"S": project_id}},
                ProjectionExpression="id, ownerId, orgId",
            ).get("Item")
        except (ClientError, BotoCoreError) as error:
            raise DependencyUnavailable("dynamodb") from error
        if item is None or "ownerId" not in item:
            return None
        return Project(
            id=item["id"]["S"],
            owner_id=item["ownerId"]["S"],
            org_id=item.get("orgId", {}).get("S") or None,
        )

    @tracer.capture_method
    def owned_page(self, owner_id: str, after: str | None, limit: int) -> tuple[list[str], bool]:
        """Up to `limit` of an owner's projects from the owner index, after project `after`
        (None: from the first); and whether more may follow."""
        request: dict[str, Any] = {
            "TableName": self._table_name,
            "IndexName": BY_OWNER,
            "KeyConditionExpression": "ownerId = :owner",
            "ExpressionAttributeValues": {":owner": {"S": owner_id}},
            "ProjectionExpression": "id",
            "Limit": limit,
        }
        if after is not None:
            request["ExclusiveStartKey"] = {"ownerId": {"S": owner_id}, "id": {"S": after}}
        try:
            response = self._client.query(**request)
        except (ClientError, BotoCoreError) as error:
            raise DependencyUnavailable("dynamodb") from error
        return [item["id"]["S"] for item in response.get("Items", [])], "LastEvaluatedKey" in response
