"""The scene of the bulk cancel tests: three projects of two owners with messages of every status
and age, bulk requests, and contexts with and without time to spare."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from cancel_service.models import utc_timestamp
from support.constants import TABLE_NAMES
from support.events import eventbridge_event
from support.lambda_context import BudgetContext
from support.store import Store

OWNER_A, OWNER_B = "user_2ownerA", "user_2ownerB"
NOW = datetime.now(UTC)
LONG_AGO = utc_timestamp(NOW - timedelta(hours=2))
RECENTLY = utc_timestamp(NOW - timedelta(seconds=30))
ALL_IDS = ("a1", "a2", "a3", "b1", "b2", "c1", "c2")
BEFORE = {"a2": "completed", "b2": "pending", "c2": "failed"}
UNCHANGED = {message_id: BEFORE.get(message_id, "processing") for message_id in ALL_IDS}


def roomy_context() -> BudgetContext:
    """Plenty of time: the whole bulk fits in one invocation."""
    return BudgetContext(remaining_ms=900_000, step_ms=0)


def bulk_event(detail: dict[str, Any], source: str = "app.admin") -> dict[str, Any]:
    return eventbridge_event("Bulk Cancel Requested", detail, source=source)


def seed_bulk_scene(store: Store) -> Store:
    """Projects p1, p2 of OWNER_A and p3 of OWNER_B, with the messages ALL_IDS (BEFORE: not processing)."""
    store.put_project("p1", owner_id=OWNER_A)
    store.put_project("p2", owner_id=OWNER_A)
    store.put_project("p3", owner_id=OWNER_B)
    store.put_message("a1", project_id="p1", updated_at=LONG_AGO)
    store.put_message("a2", project_id="p1", status="completed", updated_at=LONG_AGO)
    store.put_message("a3", project_id="p1", conversation_id="conv_2", updated_at=RECENTLY)
    store.put_message("b1", project_id="p2", updated_at=RECENTLY)
    store.put_message("b2", project_id="p2", status="pending", updated_at=LONG_AGO)
    store.put_message("c1", project_id="p3", updated_at=LONG_AGO)
    store.put_message("c2", project_id="p3", status="failed", updated_at=LONG_AGO)
    return store


def statuses(store: Store) -> dict[str, str]:
    return {message_id: store.status(message_id) for message_id in ALL_IDS}


def put_processing_messages(
    store: Store, count: int, projects: list[str], updated_at: Callable[[int], str] = lambda _: LONG_AGO
) -> set[str]:
    """Messages m00000... processing in `projects` in turn; `updated_at(n)` the n-th's last update."""
    ids = [f"m{n:05d}" for n in range(count)]
    for start in range(0, count, 25):
        store.dynamodb.batch_write_item(
            RequestItems={
                TABLE_NAMES["MessagesTable"]: [
                    {
                        "PutRequest": {
                            "Item": {
                                "id": {"S": message_id},
                                "projectId": {"S": projects[n % len(projects)]},
                                "conversationId": {"S": "conv_1"},
                                "status": {"S": "processing"},
                                "createdAt": {"S": LONG_AGO},
                                "updatedAt": {"S": updated_at(n)},
                            }
                        }
                    }
                    for n, message_id in enumerate(ids[start : start + 25], start)
                ]
            }
        )
    return set(ids)
