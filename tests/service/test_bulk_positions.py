"""A bulk's positions (cursors) are honoured only on the service's own continuations, only as the
link its bulk's state expects, and where it resumes comes from that state: anything else is
refused and changes nothing."""

from __future__ import annotations

import pytest

from cancel_service.core import bulk
from cancel_service.handlers import bulk_cancel
from support.bulk_scene import LONG_AGO, OWNER_A, RECENTLY, UNCHANGED, bulk_event, roomy_context, statuses
from support.lambda_context import BudgetContext

FAR_FUTURE_CUTOFF = "9999-12-31T23:59:59.999Z"
PROGRESS = {"startedAt": LONG_AGO, "selector": {"ownerId": OWNER_A}, "invocations": 1}


def project_key(message_id: str, project_id: str, status: str = "processing") -> dict:
    return {"id": {"S": message_id}, "projectId": {"S": project_id}, "status": {"S": status}}


# A position of the age index (`updatedAt#id`) later than the cutoff it continues.
AGE_POSITION_AFTER_CUTOFF = f"{RECENTLY}#a1"


def test_a_position_from_another_source_is_refused_and_changes_nothing(bulk_scene, lambda_context, log_lines):
    bulk_scene.put_message("future", project_id="p1", updated_at="2099-01-01T00:00:00.000Z")

    answer = bulk_cancel.handler(
        bulk_event({"olderThanSeconds": 60, "cursor": {"cutoff": FAR_FUTURE_CUTOFF, "progress": PROGRESS}}),
        lambda_context,
    )

    assert answer == {"accepted": False}
    assert statuses(bulk_scene) == UNCHANGED
    assert bulk_scene.status("future") == "processing"
    assert bulk_scene.published() == []
    assert any("rejected" in line["message"] for line in log_lines())


def test_a_continuation_may_not_move_the_cutoff_later(bulk_scene, lambda_context):
    bulk_scene.put_message("future", project_id="p1", updated_at="2099-01-01T00:00:00.000Z")

    answer = bulk_cancel.handler(
        bulk_event(
            {"olderThanSeconds": 60, "cursor": {"cutoff": FAR_FUTURE_CUTOFF, "progress": PROGRESS}},
            source="app.messages.bulk",
        ),
        lambda_context,
    )

    assert answer == {"accepted": False}
    assert statuses(bulk_scene) == UNCHANGED
    assert bulk_scene.status("future") == "processing"


def one_page_at_a_time(monkeypatch) -> BudgetContext:
    monkeypatch.setattr(bulk, "PAGE_SIZE", 1)
    return BudgetContext(remaining_ms=25_000, step_ms=10_000)


def test_an_owner_continuation_cannot_reach_another_owners_project(bulk_scene, route, monkeypatch):
    continuations = route("BulkCancelFunction", "BulkCancelRequested")
    bulk_cancel.handler(bulk_event({"ownerId": OWNER_A, "bulkId": "own"}), one_page_at_a_time(monkeypatch))
    (continuation,) = continuations.take()
    continuation["detail"]["cursor"] = {
        **continuation["detail"]["cursor"],
        "projectId": "p3",
        "startKey": None,
    }

    answer = bulk_cancel.handler(continuation, roomy_context())

    assert answer["accepted"] is True
    assert "c1" not in answer["messageIds"]  # where it resumes comes from the bulk's state
    assert bulk_scene.status("c1") == "processing"  # p3 is another owner's


def test_an_owner_continuation_resumes_with_the_owners_projects_after_its_position(
    bulk_scene, route, monkeypatch
):
    continuations = route("BulkCancelFunction", "BulkCancelRequested")
    pending = [bulk_event({"ownerId": OWNER_A, "bulkId": "resumes"})]
    cancelled: list[str] = []
    while pending:
        answer = bulk_cancel.handler(pending.pop(), one_page_at_a_time(monkeypatch))
        cancelled.extend(answer["messageIds"])
        pending.extend(continuations.take())

    assert sorted(cancelled) == ["a1", "a3", "b1"]  # p1, then p2
    assert bulk_scene.status("c1") == "processing"


@pytest.mark.parametrize(
    "cursor",
    [
        {"startKey": {"id": {"N": "1"}, "projectId": {"S": "p1"}, "status": {"S": "processing"}}},
        {"startKey": {**project_key("a1", "p1"), "updatedAt": {"S": LONG_AGO}}},
        {"startKey": {"id": {"S": "a1"}, "projectId": {"S": "p1"}}},
        {"startKey": project_key("a2", "p1", status="completed")},
        {"startKey": project_key("c1", "p3")},
        {"startKey": "a1"},
        {"projectIds": ["p1"]},
    ],
    ids=[
        "number-key",
        "extra-attribute",
        "missing-attribute",
        "finished-status",
        "other-project",
        "string",
        "list",
    ],
)
def test_a_tampered_page_key_is_refused_not_retried(bulk_scene, lambda_context, cursor):
    event = bulk_event(
        {"projectIds": ["p1"], "cursor": {**cursor, "progress": PROGRESS}}, source="app.messages.bulk"
    )

    answer = bulk_cancel.handler(event, lambda_context)  # returns: no exception for Lambda to retry

    assert answer == {"accepted": False}
    assert bulk_scene.status("a1") == "processing"
    assert bulk_scene.published() == []


@pytest.mark.parametrize(
    "cursor",
    [
        {"cutoff": LONG_AGO, "startKey": project_key("a1", "p1")},
        {"cutoff": LONG_AGO, "after": AGE_POSITION_AFTER_CUTOFF},
        {"cutoff": LONG_AGO, "after": ""},
    ],
    ids=["key-of-another-index", "position-after-the-cutoff", "empty-position"],
)
def test_an_age_position_must_stay_before_its_cutoff(bulk_scene, lambda_context, cursor):
    detail = {"olderThanSeconds": 3600, "cursor": {**cursor, "progress": PROGRESS}}

    answer = bulk_cancel.handler(bulk_event(detail, source="app.messages.bulk"), lambda_context)

    assert answer == {"accepted": False}
    assert bulk_scene.status("a1") == "processing"
