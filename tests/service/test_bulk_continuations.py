"""Bulk cancels too large for one invocation continue in events of their own until none is left:
no message reported twice, the cap and the bulk id kept across continuations, every continuation
under EventBridge's entry limit."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

from cancel_service.handlers import bulk_cancel
from cancel_service.models import utc_timestamp
from support.bulk_scene import LONG_AGO, NOW, RECENTLY, bulk_event, put_processing_messages, roomy_context
from support.client_faults import ClientWithFaults, install
from support.constants import BUS_NAME, TABLE_NAMES
from support.lambda_context import BudgetContext
from support.store import Store


def published_cancels(clients: dict[str, ClientWithFaults]) -> list[str]:
    """The message ids of the `Message Cancel Requested` events sent, read from the calls: moto's
    SQS receive is linear in the queue's length, so draining thousands of events would take minutes."""
    return [
        json.loads(entry["Detail"])["messageId"]
        for operation, call in clients["events"].calls
        if operation == "put_events"
        for entry in call["Entries"]
        if entry["DetailType"] == "Message Cancel Requested"
    ]


def still_processing(store: Store) -> int:
    return store.dynamodb.scan(
        TableName=TABLE_NAMES["MessagesTable"],
        FilterExpression="#status = :processing",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":processing": {"S": "processing"}},
        Select="COUNT",
    )["Count"]


def test_a_large_projects_bulk_continues_until_none_is_left_and_none_is_reported_twice(
    store, route, monkeypatch
):
    continuations = route("BulkCancelFunction", "BulkCancelRequested")
    store.events.remove_targets(Rule="capture", EventBusName=BUS_NAME, Ids=["queue"])
    clients = install(monkeypatch)
    count = 1500  # the project cursor across three projects
    expected = put_processing_messages(store, count, ["p1", "p2", "p3"])
    started = time.monotonic()

    reported: list[str] = []
    invocations = 0
    pending = [bulk_event({"projectIds": ["p1", "p2", "p3"]})]
    while pending:
        event = pending.pop()
        invocations += 1
        # Time for four pages per invocation, as if the function's timeout were short.
        answer = bulk_cancel.handler(event, BudgetContext(remaining_ms=60_000, step_ms=10_000))
        reported.extend(answer["messageIds"])
        pending.extend(continuations.take())  # as EventBridge would deliver the continuation
        assert bool(pending) == answer["continued"]
        assert invocations <= count // 100, "the bulk does not converge"

    assert invocations >= count // 500
    assert len(reported) == len(set(reported)) == count
    assert set(reported) == expected
    published = published_cancels(clients)
    assert len(published) == len(set(published)) == count
    assert still_processing(store) == 0
    print(f"{count}-message bulk: {invocations} invocations, {time.monotonic() - started:.1f} s")


def test_a_bulk_by_age_continues_oldest_first_under_one_id_until_none_is_left(store, route, monkeypatch):
    """The sweep's shape through the age index: every message goes through the index's stream
    function in (written processing) and out (cancelled), the bulk reads the index page after
    page across shards and continuations."""
    continuations = route("BulkCancelFunction", "BulkCancelRequested")
    store.events.remove_targets(Rule="capture", EventBusName=BUS_NAME, Ids=["queue"])
    clients = install(monkeypatch)
    count = 600  # m00000 the oldest, a second apart
    put_processing_messages(
        store, count, ["p1", "p2", "p3"], lambda n: utc_timestamp(NOW - timedelta(hours=2, seconds=-n))
    )
    oldest_first = [f"m{n:05d}" for n in range(count)]
    store.put_message("fresh", updated_at=RECENTLY)
    store.put_message("finished", status="completed", updated_at=LONG_AGO)
    started = time.monotonic()

    reported: list[str] = []
    continued: list[dict] = []
    pending = [bulk_event({"olderThanSeconds": 3600, "reason": "stale_processing"}, source="app.schedule")]
    while pending:
        assert len(pending) == 1  # one chain: one continuation at a time
        # Time for two pages of 100 per invocation: three invocations, two continuations.
        answer = bulk_cancel.handler(pending.pop(), BudgetContext(remaining_ms=40_000, step_ms=10_000))
        reported.extend(answer["messageIds"])
        pending.extend(continuations.take())  # as EventBridge would deliver the continuation
        continued.extend(pending)
        assert bool(pending) == answer["continued"]
        assert len(continued) <= count // 100, "the bulk does not converge"

    assert reported == oldest_first  # each once, oldest first across shards and continuations
    assert len(continued) >= 2
    (bulk_id,) = {event["detail"]["bulkId"] for event in continued}
    assert sorted(published_cancels(clients)) == oldest_first  # each once (a page's batches go in parallel)
    assert {store.message(message_id)["cancelRequestId"] for message_id in oldest_first[::97]} == {bulk_id}
    assert (store.status("fresh"), store.status("finished")) == ("processing", "completed")
    assert still_processing(store) == 1
    print(
        f"{count}-message bulk by age: {len(continued) + 1} invocations, {time.monotonic() - started:.1f} s"
    )


@pytest.mark.parametrize(
    "selector", [{"projectIds": ["p1"]}, {"olderThanSeconds": 3600}], ids=["projects", "age"]
)
def test_a_cap_holds_across_continuations(store, route, reports, selector):
    continuations = route("BulkCancelFunction", "BulkCancelRequested")
    put_processing_messages(store, 300, ["p1"])

    first = bulk_cancel.handler(
        bulk_event({**selector, "maxMessages": 150}), BudgetContext(remaining_ms=15_000, step_ms=0)
    )
    (continuation,) = continuations.take()
    second = bulk_cancel.handler(continuation, roomy_context())

    assert (len(first["messageIds"]), len(second["messageIds"])) == (100, 50)
    (report,) = reports()
    assert (report["outcome"], report["cancelled"], report["invocations"]) == ("capped", 150, 2)


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


def test_a_large_projects_bulk_hands_off_before_its_margin_in_events_under_the_entry_limit(
    store, route, monkeypatch, reports
):
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

    # Time for one page only: the continuation goes out before the safety margin although the
    # rest of the selection (the whole list but for the first project's page) never shrinks:
    # it names its link and position, and the bulk's state holds the list.
    first_answer = bulk_cancel.handler(request, BudgetContext(remaining_ms=25_000, step_ms=10_000))
    queried = [call for op, call in clients["dynamodb"].calls if op == "query"]
    assert first_answer["continued"]
    assert len(queried) == 1, "worked past the safety margin"
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
