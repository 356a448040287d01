"""Bulk cancels: each detail shape cancels exactly its messages through the one cancel core;
an invalid detail changes nothing; a bulk too large for one invocation continues until done."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from cancel_service import bulk
from cancel_service.errors import DependencyUnavailable
from cancel_service.handlers import bulk_cancel
from cancel_service.models import utc_timestamp
from support.agent_scene import Route
from support.client_faults import client_error, install
from support.constants import BUS_NAME, TABLE_NAMES
from support.events import eventbridge_event, matches, rule_pattern
from support.lambda_context import BudgetContext
from support.store import Store

OWNER_A, OWNER_B = "user_2ownerA", "user_2ownerB"
NOW = datetime.now(UTC)
LONG_AGO = utc_timestamp(NOW - timedelta(hours=2))
RECENTLY = utc_timestamp(NOW - timedelta(seconds=30))


def roomy_context() -> BudgetContext:
    """Plenty of time: the whole bulk fits in one invocation."""
    return BudgetContext(remaining_ms=900_000, step_ms=0)


def bulk_event(detail: dict, source: str = "app.admin") -> dict:
    return eventbridge_event("Bulk Cancel Requested", detail, source=source)


@pytest.fixture
def scene(store: Store) -> Store:
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


ALL_IDS = ("a1", "a2", "a3", "b1", "b2", "c1", "c2")
BEFORE = {"a2": "completed", "b2": "pending", "c2": "failed"}


@pytest.mark.parametrize(
    ("detail", "expected", "reason"),
    [
        ({"projectIds": ["p1", "p3"]}, {"a1", "a3", "c1"}, "bulk_request"),
        ({"ownerId": OWNER_A, "reason": "account_closed"}, {"a1", "a3", "b1"}, "account_closed"),
        ({"olderThanSeconds": 3600}, {"a1", "c1"}, "bulk_request"),
    ],
    ids=["projectIds", "ownerId", "olderThanSeconds"],
)
def test_each_shape_cancels_exactly_its_processing_messages(scene, detail, expected, reason):
    answer = bulk_cancel.handler(bulk_event(detail), roomy_context())

    assert answer["accepted"] is True
    assert answer["continued"] is False
    assert sorted(answer["messageIds"]) == sorted(expected)
    for message_id in ALL_IDS:
        item = scene.message(message_id)
        if message_id in expected:
            assert item["status"] == "cancelled"
            assert item["cancelledBy"] == "system:bulk"
            assert item["cancelReason"] == reason
        else:
            assert item["status"] == BEFORE.get(message_id, "processing")
            assert "cancelledBy" not in item
    events = scene.published()
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
def test_an_invalid_detail_is_rejected_and_changes_nothing(scene, lambda_context, detail):
    answer = bulk_cancel.handler(bulk_event(detail), lambda_context)

    assert answer == {"accepted": False}
    assert {message_id: scene.status(message_id) for message_id in ALL_IDS} == {
        message_id: BEFORE.get(message_id, "processing") for message_id in ALL_IDS
    }
    assert scene.published() == []


def test_the_bulk_rule_takes_any_source_but_the_cancel_events_own(template):
    pattern = rule_pattern(template, "BulkCancelFunction", "BulkCancelRequested")

    assert matches(pattern, bulk_event({"ownerId": OWNER_A}, source="app.admin"))
    assert matches(pattern, bulk_event({"ownerId": OWNER_A}, source="app.messages.bulk"))  # continuations
    assert not matches(pattern, bulk_event({"ownerId": OWNER_A}, source="app.messages"))
    assert not matches(pattern, eventbridge_event("Message Cancel Requested", {}, source="app.admin"))


def test_the_scheduled_sweep_cancels_messages_stuck_in_processing(scene, template):
    target_input = template["Resources"]["BulkCancelFunction"]["Properties"]["Events"]["StaleSweep"][
        "Properties"
    ]["Input"]["Fn::Sub"]
    values = {"AWS::AccountId": "123456789012", "AWS::Region": "us-east-1", "StaleAfterSeconds": "3600"}
    for name, value in values.items():
        target_input = target_input.replace("${" + name + "}", value)

    answer = bulk_cancel.handler(json.loads(target_input), roomy_context())

    assert sorted(answer["messageIds"]) == ["a1", "c1"]
    assert scene.message("a1")["cancelReason"] == "stale_processing"


def put_processing_messages(store: Store, count: int, projects: list[str]) -> set[str]:
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
                                "updatedAt": {"S": LONG_AGO},
                            }
                        }
                    }
                    for n, message_id in enumerate(ids[start : start + 25], start)
                ]
            }
        )
    return set(ids)


@pytest.mark.parametrize(
    ("detail", "count"),
    # The sweep's shape at full size; the project cursor (across three projects) on a smaller bulk.
    [({"olderThanSeconds": 3600}, 5000), ({"projectIds": ["p1", "p2", "p3"]}, 1500)],
    ids=["olderThanSeconds-5000", "projectIds-1500"],
)
def test_a_large_bulk_continues_until_none_is_left_and_none_is_reported_twice(
    store, route, monkeypatch, detail, count
):
    continuations = route("BulkCancelFunction", "BulkCancelRequested")
    # The published cancel events are counted from the calls instead: moto's SQS receive is linear
    # in the queue's length, so draining 5,000 events from the catch-all queue would take minutes.
    store.events.remove_targets(Rule="capture", EventBusName=BUS_NAME, Ids=["queue"])
    clients = install(monkeypatch)
    expected = put_processing_messages(store, count, ["p1", "p2", "p3"])
    started = time.monotonic()

    reported: list[str] = []
    invocations = 0
    pending = [bulk_event(detail)]
    while pending:
        event = pending.pop()
        invocations += 1
        # Time for five pages per invocation, as if the function's timeout were short.
        answer = bulk_cancel.handler(event, BudgetContext(remaining_ms=60_000, step_ms=10_000))
        reported.extend(answer["messageIds"])
        pending.extend(continuations.take())  # as EventBridge would deliver the continuation
        assert bool(pending) == answer["continued"]
        assert invocations <= count // 100, "the bulk does not converge"

    assert invocations >= count // 500  # five pages of 100 per invocation
    assert len(reported) == len(set(reported)) == count
    assert set(reported) == expected
    published = [
        json.loads(entry["Detail"])["messageId"]
        for operation, call in clients["events"].calls
        if operation == "put_events"
        for entry in call["Entries"]
        if entry["DetailType"] == "Message Cancel Requested"
    ]
    assert len(published) == len(set(published)) == count
    left = store.dynamodb.query(
        TableName=TABLE_NAMES["MessagesTable"],
        IndexName="byStatusAndUpdatedAt",
        KeyConditionExpression="#status = :processing",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":processing": {"S": "processing"}},
        Select="COUNT",
    )["Count"]
    assert left == 0
    print(f"{count}-message bulk: {invocations} invocations, {time.monotonic() - started:.1f} s")


@pytest.fixture
def reports(store: Store):
    """The `Bulk Cancel Completed` events the bulk function publishes."""
    queue_url = store.sqs.create_queue(QueueName="bulk-reports")["QueueUrl"]
    store.events.put_rule(
        Name="bulk-reports",
        EventBusName=BUS_NAME,
        EventPattern=json.dumps({"source": ["app.messages.bulk"], "detail-type": ["Bulk Cancel Completed"]}),
    )
    store.events.put_targets(
        Rule="bulk-reports",
        EventBusName=BUS_NAME,
        Targets=[{"Id": "queue", "Arn": "arn:aws:sqs:us-east-1:123456789012:bulk-reports"}],
    )
    return lambda: [event["detail"] for event in Route(store.sqs, queue_url).take()]


@pytest.fixture
def no_retry_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "RETRY_DELAY_SECONDS", 0.0)


def test_a_finished_bulk_reports_its_counts_once(scene, reports):
    scene.put_message("late", project_id="p1", status="completed")
    answer = bulk_cancel.handler(
        bulk_event({"projectIds": ["p1", "p3"], "bulkId": "b-1", "reason": "cleanup"}), roomy_context()
    )

    (report,) = reports()
    assert answer["outcome"] == "finished"
    assert report == {
        "bulkId": "b-1",
        "selector": {"projectIds": ["p1", "p3"], "projectCount": 2},
        "dryRun": False,
        "outcome": "finished",
        "selected": 3,
        "cancelled": 3,
        "alreadyFinished": 0,
        "failed": 0,
        "invocations": 1,
        "startedAt": report["startedAt"],
        "finishedAt": report["finishedAt"],
    }
    assert report["startedAt"] <= report["finishedAt"]


def test_a_dry_run_counts_and_changes_nothing(scene, reports):
    answer = bulk_cancel.handler(bulk_event({"ownerId": OWNER_A, "dryRun": True}), roomy_context())

    assert answer["messageIds"] == []
    assert statuses(scene) == UNCHANGED
    assert [e for e in scene.published() if e["detail-type"] == "Message Cancel Requested"] == []
    (report,) = reports()
    assert (report["dryRun"], report["outcome"], report["selected"], report["cancelled"]) == (
        True,
        "finished",
        3,
        0,
    )


def test_a_bulk_stops_at_its_cap_and_says_so(store, reports):
    put_processing_messages(store, 250, ["p1"])

    answer = bulk_cancel.handler(bulk_event({"olderThanSeconds": 3600, "maxMessages": 120}), roomy_context())

    assert len(answer["messageIds"]) == 120
    statuses_now = [store.status(f"m{n:05d}") for n in range(250)]
    assert statuses_now.count("cancelled") == 120
    (report,) = reports()
    assert (report["outcome"], report["cancelled"], report["selected"]) == ("capped", 120, 120)


def test_a_cap_holds_across_continuations(store, route, reports):
    continuations = route("BulkCancelFunction", "BulkCancelRequested")
    put_processing_messages(store, 300, ["p1"])

    first = bulk_cancel.handler(
        bulk_event({"projectIds": ["p1"], "maxMessages": 150}), BudgetContext(remaining_ms=15_000, step_ms=0)
    )
    (continuation,) = continuations.take()
    second = bulk_cancel.handler(continuation, roomy_context())

    assert (len(first["messageIds"]), len(second["messageIds"])) == (100, 50)
    (report,) = reports()
    assert (report["outcome"], report["cancelled"], report["invocations"]) == ("capped", 150, 2)


def test_a_bulk_whose_writes_keep_failing_gives_up_and_reports_why(
    scene, monkeypatch, reports, no_retry_delay
):
    clients = install(monkeypatch)
    bulk_cancel.handler(bulk_event({"projectIds": ["nothing-here"]}), roomy_context())  # builds the clients
    reports()

    def throttled(**kwargs):
        raise client_error("ProvisionedThroughputExceededException", "UpdateItem")

    clients["dynamodb"].intercept["update_item"] = throttled

    answer = bulk_cancel.handler(bulk_event({"projectIds": ["p1"]}), roomy_context())

    assert answer["outcome"] == "failed"
    (report,) = reports()
    assert (report["outcome"], report["error"]) == ("failed", "dynamodb unavailable")
    assert (report["selected"], report["cancelled"], report["failed"]) == (2, 0, 2)
    assert scene.status("a1") == "processing"


def test_when_not_even_the_report_can_be_published_the_invocation_fails_for_lambda_to_retry(
    scene, monkeypatch, no_retry_delay
):
    clients = install(monkeypatch)
    bulk_cancel.handler(bulk_event({"projectIds": ["nothing-here"]}), roomy_context())  # builds the clients

    def eventbridge_down(**kwargs):
        raise client_error("InternalException", "PutEvents")

    clients["events"].intercept["put_events"] = eventbridge_down

    with pytest.raises(DependencyUnavailable):
        bulk_cancel.handler(bulk_event({"projectIds": ["p1"]}), roomy_context())
    assert scene.status("a1") == "processing"  # no event accepted: nothing cancelled


def test_a_continuation_that_cannot_be_published_ends_the_bulk_as_failed(
    store, monkeypatch, reports, no_retry_delay
):
    clients = install(monkeypatch)
    bulk_cancel.handler(bulk_event({"projectIds": ["nothing-here"]}), roomy_context())  # builds the clients
    reports()
    put_processing_messages(store, 150, ["p1"])
    events = clients["events"]

    def continuation_refused(**kwargs):
        if kwargs["Entries"][0]["DetailType"] == "Bulk Cancel Requested":
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure"}]}
        return events.real.put_events(**kwargs)

    events.intercept["put_events"] = continuation_refused

    # Time for one page only: the second page must go to a continuation.
    bulk_cancel.handler(bulk_event({"projectIds": ["p1"]}), BudgetContext(remaining_ms=15_000, step_ms=0))

    statuses_now = [store.status(f"m{n:05d}") for n in range(150)]
    assert statuses_now.count("cancelled") == 100  # the first page stays cancelled
    (report,) = reports()
    assert (report["outcome"], report["cancelled"], report["error"]) == (
        "failed",
        100,
        "eventbridge unavailable",
    )


# --- positions: honoured only on the service's own continuations, and only where they narrow ---------

FAR_FUTURE_CUTOFF = "9999-12-31T23:59:59.999Z"
PROGRESS = {"startedAt": LONG_AGO, "selector": {"ownerId": OWNER_A}, "invocations": 1}


def statuses(store: Store) -> dict[str, str]:
    return {message_id: store.status(message_id) for message_id in ALL_IDS}


UNCHANGED = {message_id: BEFORE.get(message_id, "processing") for message_id in ALL_IDS}


def test_a_position_from_another_source_is_refused_and_changes_nothing(scene, lambda_context, log_lines):
    scene.put_message("future", project_id="p1", updated_at="2099-01-01T00:00:00.000Z")

    answer = bulk_cancel.handler(
        bulk_event({"olderThanSeconds": 60, "cursor": {"cutoff": FAR_FUTURE_CUTOFF, "progress": PROGRESS}}),
        lambda_context,
    )

    assert answer == {"accepted": False}
    assert statuses(scene) == UNCHANGED
    assert scene.status("future") == "processing"
    assert scene.published() == []
    assert any("rejected" in line["message"] for line in log_lines())


def test_a_continuation_may_not_move_the_cutoff_later(scene, lambda_context):
    scene.put_message("future", project_id="p1", updated_at="2099-01-01T00:00:00.000Z")

    answer = bulk_cancel.handler(
        bulk_event(
            {"olderThanSeconds": 60, "cursor": {"cutoff": FAR_FUTURE_CUTOFF, "progress": PROGRESS}},
            source="app.messages.bulk",
        ),
        lambda_context,
    )

    assert answer == {"accepted": False}
    assert statuses(scene) == UNCHANGED
    assert scene.status("future") == "processing"


def test_an_owner_continuation_cannot_reach_another_owners_project(scene):
    answer = bulk_cancel.handler(
        bulk_event(
            {"ownerId": OWNER_A, "cursor": {"projectId": "p3", "progress": PROGRESS}},
            source="app.messages.bulk",
        ),
        roomy_context(),
    )

    assert answer["accepted"] is True
    assert "c1" not in answer["messageIds"]
    assert scene.status("c1") == "processing"  # p3 is another owner's


def test_an_owner_continuation_resumes_with_the_owners_projects_after_its_position(scene):
    answer = bulk_cancel.handler(
        bulk_event(
            {"ownerId": OWNER_A, "cursor": {"projectId": "p1", "progress": PROGRESS}},
            source="app.messages.bulk",
        ),
        roomy_context(),
    )

    assert sorted(answer["messageIds"]) == ["a1", "a3", "b1"]  # p1 (resumed), then p2
    assert scene.status("c1") == "processing"


def project_key(message_id: str, project_id: str, status: str = "processing") -> dict:
    return {"id": {"S": message_id}, "projectId": {"S": project_id}, "status": {"S": status}}


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
def test_a_tampered_page_key_is_refused_not_retried(scene, lambda_context, cursor):
    event = bulk_event(
        {"projectIds": ["p1"], "cursor": {**cursor, "progress": PROGRESS}}, source="app.messages.bulk"
    )

    answer = bulk_cancel.handler(event, lambda_context)  # returns: no exception for Lambda to retry

    assert answer == {"accepted": False}
    assert scene.status("a1") == "processing"
    assert scene.published() == []


AGE_KEY_AFTER_CUTOFF = {"id": {"S": "a1"}, "status": {"S": "processing"}, "updatedAt": {"S": RECENTLY}}


@pytest.mark.parametrize(
    "cursor",
    [
        {"cutoff": LONG_AGO, "startKey": project_key("a1", "p1")},
        {"cutoff": LONG_AGO, "startKey": AGE_KEY_AFTER_CUTOFF},
    ],
    ids=["key-of-another-index", "key-after-the-cutoff"],
)
def test_an_age_position_must_stay_before_its_cutoff(scene, lambda_context, cursor):
    detail = {"olderThanSeconds": 3600, "cursor": {**cursor, "progress": PROGRESS}}

    answer = bulk_cancel.handler(bulk_event(detail, source="app.messages.bulk"), lambda_context)

    assert answer == {"accepted": False}
    assert scene.status("a1") == "processing"


def test_the_cancel_events_own_source_is_refused_by_the_function_itself(scene, lambda_context):
    answer = bulk_cancel.handler(bulk_event({"projectIds": ["p1"]}, source="app.messages"), lambda_context)

    assert answer == {"accepted": False}
    assert scene.status("a1") == "processing"
    assert scene.published() == []


def test_a_bulk_id_is_the_request_id_of_its_events_and_writes(scene):
    answer = bulk_cancel.handler(bulk_event({"projectIds": ["p1"], "bulkId": "nightly-42"}), roomy_context())

    assert sorted(answer["messageIds"]) == ["a1", "a3"]
    cancel_events = [e for e in scene.published() if e["detail-type"] == "Message Cancel Requested"]
    assert {event["detail"]["requestId"] for event in cancel_events} == {"nightly-42"}
    assert scene.message("a1")["cancelRequestId"] == "nightly-42"


def test_a_bulk_without_an_id_gets_one_and_its_continuations_carry_it(store, route):
    continuations = route("BulkCancelFunction", "BulkCancelRequested")
    put_processing_messages(store, 150, ["p1"])

    bulk_cancel.handler(bulk_event({"projectIds": ["p1"]}), BudgetContext(remaining_ms=15_000, step_ms=0))

    (continuation,) = continuations.take()
    bulk_id = continuation["detail"]["bulkId"]
    assert continuation["source"] == "app.messages.bulk"
    assert store.message("m00000")["cancelRequestId"] == bulk_id
    answer = bulk_cancel.handler(continuation, roomy_context())
    assert len(answer["messageIds"]) == 50
    assert {store.message(f"m{n:05d}")["cancelRequestId"] for n in range(150)} == {bulk_id}


def entry_size(entry: dict) -> int:
    """EventBridge's size of a PutEvents entry: source, detail type, detail (and resources)."""
    return sum(len(entry.get(name, "").encode()) for name in ("Source", "DetailType", "Detail"))


def test_a_large_projects_bulk_continues_in_events_under_the_entry_limit(store, route, monkeypatch, reports):
    continuations = route("BulkCancelFunction", "BulkCancelRequested")
    clients = install(monkeypatch)
    # As large a request as EventBridge carries (each id takes 123 bytes in the JSON list).
    project_ids = [f"{n:04d}".ljust(120, "x") for n in range((256 * 1024 - 200) // 123)]
    first, last = project_ids[0], project_ids[-1]
    put_processing_messages(store, 150, [first])
    store.put_message("last-one", project_id=last, updated_at=LONG_AGO)
    request = bulk_event({"projectIds": project_ids})
    request_entry = {
        "Source": "app.admin",
        "DetailType": "Bulk Cancel Requested",
        "Detail": json.dumps(request["detail"], separators=(",", ":")),
    }
    assert 256 * 1024 - 1024 < entry_size(request_entry) < 256 * 1024

    # Time for one page only: the rest (the whole list, its position and progress) does not fit
    # in one event yet, so the invocation goes on until it does, then continues.
    first_answer = bulk_cancel.handler(request, BudgetContext(remaining_ms=25_000, step_ms=10_000))
    queried = {
        call["ExpressionAttributeValues"][":project"]["S"]
        for op, call in clients["dynamodb"].calls
        if op == "query"
    }
    assert first_answer["continued"]
    assert len(queried) > 2, "the rest was handed off before it fitted"
    reported: list[str] = list(first_answer["messageIds"])
    pending = continuations.take()
    while pending:
        assert len(pending) == 1  # one chain: one continuation at a time
        answer = bulk_cancel.handler(pending.pop(), roomy_context())
        reported.extend(answer["messageIds"])
        pending.extend(continuations.take())

    assert sorted(reported) == sorted({f"m{n:05d}" for n in range(150)} | {"last-one"})
    sizes = [
        entry_size(entry)
        for operation, call in clients["events"].calls
        if operation == "put_events"
        for entry in call["Entries"]
        if entry["Source"] == "app.messages.bulk"
    ]
    assert len(sizes) == 2  # one continuation, one report
    assert max(sizes) < 256 * 1024
    (report,) = reports()
    assert (report["cancelled"], report["invocations"], report["selector"]["projectCount"]) == (
        151,
        2,
        len(project_ids),
    )
