"""Bulk cancels: each detail shape cancels exactly its messages through the one cancel core; an
invalid detail, or one from the cancel events' own source, changes nothing."""

from __future__ import annotations

import json

import pytest

from cancel_service.handlers import bulk_cancel
from support.bulk_scene import ALL_IDS, BEFORE, OWNER_A, bulk_event, roomy_context
from support.events import eventbridge_event, matches, rule_pattern


@pytest.mark.parametrize(
    ("detail", "expected", "reason"),
    [
        ({"projectIds": ["p1", "p3"]}, {"a1", "a3", "c1"}, "bulk_request"),
        ({"ownerId": OWNER_A, "reason": "account_closed"}, {"a1", "a3", "b1"}, "account_closed"),
        ({"olderThanSeconds": 3600}, {"a1", "c1"}, "bulk_request"),
    ],
    ids=["projectIds", "ownerId", "olderThanSeconds"],
)
def test_each_shape_cancels_exactly_its_processing_messages(bulk_scene, detail, expected, reason):
    answer = bulk_cancel.handler(bulk_event(detail), roomy_context())

    assert answer["accepted"] is True
    assert answer["continued"] is False
    assert sorted(answer["messageIds"]) == sorted(expected)
    for message_id in ALL_IDS:
        item = bulk_scene.message(message_id)
        if message_id in expected:
            assert item["status"] == "cancelled"
            assert item["cancelledBy"] == "system:bulk"
            assert item["cancelReason"] == reason
        else:
            assert item["status"] == BEFORE.get(message_id, "processing")
            assert "cancelledBy" not in item
    events = bulk_scene.published()
    assert sorted(event["detail"]["messageId"] for event in events) == sorted(expected)
    assert {event["detail"]["requestedBy"] for event in events} == {"system:bulk"}
    assert {event["detail"]["reason"] for event in events} == {reason}


@pytest.mark.parametrize(
    "detail",
    [
        {},
        {"projectIds": []},
        {"projectIds": ["../p1"]},
        {"ownerId": "p1"},
        {"olderThanSeconds": 59},
        {"olderThanSeconds": "3600"},
        {"projectIds": ["p1"], "ownerId": OWNER_A},
        {"projectIds": ["p1"], "reason": ""},
        {"everything": True},
    ],
)
def test_an_invalid_detail_is_rejected_and_changes_nothing(bulk_scene, lambda_context, detail):
    answer = bulk_cancel.handler(bulk_event(detail), lambda_context)

    assert answer == {"accepted": False}
    assert {message_id: bulk_scene.status(message_id) for message_id in ALL_IDS} == {
        message_id: BEFORE.get(message_id, "processing") for message_id in ALL_IDS
    }
    assert bulk_scene.published() == []


def test_the_bulk_rule_takes_any_source_but_the_cancel_events_own(template):
    pattern = rule_pattern(template, "BulkCancelFunction", "BulkCancelRequested")

    assert matches(pattern, bulk_event({"ownerId": OWNER_A}, source="app.admin"))
    assert matches(pattern, bulk_event({"ownerId": OWNER_A}, source="app.messages.bulk"))  # continuations
    assert not matches(pattern, bulk_event({"ownerId": OWNER_A}, source="app.messages"))
    assert not matches(pattern, eventbridge_event("Message Cancel Requested", {}, source="app.admin"))


def test_the_cancel_events_own_source_is_refused_by_the_function_itself(bulk_scene, lambda_context):
    answer = bulk_cancel.handler(bulk_event({"projectIds": ["p1"]}, source="app.messages"), lambda_context)

    assert answer == {"accepted": False}
    assert bulk_scene.status("a1") == "processing"
    assert bulk_scene.published() == []


def test_the_scheduled_sweep_cancels_messages_stuck_in_processing(bulk_scene, template):
    target_input = template["Resources"]["BulkCancelFunction"]["Properties"]["Events"]["StaleSweep"][
        "Properties"
    ]["Input"]["Fn::Sub"]
    values = {"AWS::AccountId": "123456789012", "AWS::Region": "us-east-1", "StaleAfterSeconds": "3600"}
    for name, value in values.items():
        target_input = target_input.replace("${" + name + "}", value)

    answer = bulk_cancel.handler(json.loads(target_input), roomy_context())

    assert sorted(answer["messageIds"]) == ["a1", "c1"]
    assert bulk_scene.message("a1")["cancelReason"] == "stale_processing"


def test_a_bulk_id_is_the_request_id_of_its_events_and_writes(bulk_scene):
    answer = bulk_cancel.handler(bulk_event({"projectIds": ["p1"], "bulkId": "nightly-42"}), roomy_context())

    assert sorted(answer["messageIds"]) == ["a1", "a3"]
    cancel_events = [e for e in bulk_scene.published() if e["detail-type"] == "Message Cancel Requested"]
    assert {event["detail"]["requestId"] for event in cancel_events} == {"nightly-42"}
    assert bulk_scene.message("a1")["cancelRequestId"] == "nightly-42"
