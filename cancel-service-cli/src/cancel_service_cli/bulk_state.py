"""What `bulk` reads of the service's tables when it knows the stack: the bulk's state (its
running totals, saved after every page, and its report, kept for the state's retention) and
whether what a request names exists (a project id that does not exist selects nothing, as an
idle project does)."""

from __future__ import annotations

import time
from typing import Any

from cancel_service.adapters.bulk_state import BulkStateTable
from cancel_service.adapters.projects import ProjectsTable
from cancel_service.errors import DependencyUnavailable, StateUnavailable
from cancel_service.event_models import BulkState
from cancel_service_cli.errors import CommandError
from cancel_service_cli.stack import Stack

BULK_STATE_OUTPUT = "BulkStateTableName"
PROJECTS_OUTPUT = "ProjectsTableName"
# BatchGetItem's limit of keys per call.
KEYS_PER_BATCH = 100
UNPROCESSED_PAUSE_SECONDS = 0.2


class BulkStates:
    """The stack's bulk state table, read by bulkId."""

    def __init__(self, dynamodb: Any, stack: Stack) -> None:
        self.name = stack.output(BULK_STATE_OUTPUT)
        self._table = BulkStateTable(self.name, dynamodb)

    def read(self, bulk_id: str) -> BulkState | None:
        try:
            return self._table.get(bulk_id)
        except StateUnavailable as error:
            raise CommandError(f"bulk state table {self.name}: {error.__cause__}") from None

    def cap(self, bulk_id: str) -> int | None:
        """The request's maxMessages (its request item is written before its state)."""
        try:
            cap = self._table.request(bulk_id).get("maxMessages")
        except StateUnavailable as error:
            raise CommandError(f"bulk state table {self.name}: {error.__cause__}") from None
        return int(cap) if cap is not None else None


def unknown_projects(dynamodb: Any, stack: Stack, project_ids: list[str]) -> list[str]:
    """The ids that name no project in the stack's projects table, in the order given."""
    table = stack.output(PROJECTS_OUTPUT)
    found: set[str] = set()
    for start in range(0, len(project_ids), KEYS_PER_BATCH):
        keys = [{"id": {"S": project_id}} for project_id in project_ids[start : start + KEYS_PER_BATCH]]
        request: dict[str, Any] = {table: {"Keys": keys, "ProjectionExpression": "id"}}
        while request:
            answer = dynamodb.batch_get_item(RequestItems=request)
            found.update(item["id"]["S"] for item in answer.get("Responses", {}).get(table, []))
            request = answer.get("UnprocessedKeys") or {}
            if request:
                time.sleep(UNPROCESSED_PAUSE_SECONDS)
    return [project_id for project_id in project_ids if project_id not in found]


def owner_has_projects(dynamodb: Any, stack: Stack, owner_id: str) -> bool:
    table = stack.output(PROJECTS_OUTPUT)
    try:
        ids, _ = ProjectsTable(table, dynamodb).owned_page(owner_id, None, 1)
    except DependencyUnavailable as error:
        raise CommandError(f"projects table {table}: {error.__cause__}") from None
    return bool(ids)
