"""The cancel core's schedule: which AWS calls overlap and which wait for which (the project and
the first page read together, nothing published before the project answered, the next page read
while the first is published, each write after its own event), and the order of the answer."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from support.cancel_timeline import (
    Call,
    Timeline,
    seed_paged_messages,
    slowed,
)
from support.http_api import Answer
from support.store import Store


@dataclass
class SlowedStop:
    """A Stop over several pages whose calls were slowed to make their order unambiguous:
    the project read is slower than the first page; the first page's PutEvents are slow, and the
    batch holding its last message slowest of all."""

    answer: Answer
    timeline: Timeline
    pages: list[list[str]]
    slow_batch: Call

    def only(self, operation: str) -> Call:
        [call] = self.timeline.calls(operation)
        return call


@pytest.fixture
def slowed_stop(store: Store, timeline: Timeline, stop: Callable[..., Answer]) -> SlowedStop:
    ids = seed_paged_messages(store)

    def first_page() -> list[str]:
        return timeline.pages_read()[0]

    def publish_slowly(real: Callable[..., Any], request: dict[str, Any]) -> Any:
        batch = [json.loads(entry["Detail"])["messageId"] for entry in request["Entries"]]
        if first_page()[-1] in batch:
            time.sleep(1.0)
        elif set(batch) <= set(first_page()):
            time.sleep(0.3)
        return real(**request)

    timeline.observe("dynamodb", "get_item", slowed(0.3))
    timeline.observe("dynamodb", "query", slowed(0.05))
    timeline.observe("events", "put_events", publish_slowly)

    answer = stop()

    assert answer.status == 200
    assert sorted(answer.body["messageIds"]) == ids
    pages = timeline.pages_read()
    assert len(pages) > 1
    assert len(pages[0]) > 10, "the first page has more than one PutEvents batch"
    [slow_batch] = [call for call in timeline.calls("put_events") if pages[0][-1] in call.message_ids]
    return SlowedStop(answer, timeline, pages, slow_batch)


def test_the_project_and_the_first_page_are_read_together(slowed_stop: SlowedStop) -> None:
    project = slowed_stop.only("get_item")
    first_page = slowed_stop.timeline.calls("query")[0]

    assert first_page.started < project.ended
    assert project.started < first_page.ended


def test_nothing_is_published_or_written_before_the_project_answered(slowed_stop: SlowedStop) -> None:
    timeline = slowed_stop.timeline
    project = slowed_stop.only("get_item")
    first_page = timeline.calls("query")[0]
    publishes_and_writes = timeline.calls("put_events") + timeline.calls("update_item")

    assert first_page.ended < project.ended, "a page was ready to publish while ownership was unknown"
    assert all(call.started > project.ended for call in publishes_and_writes)


def test_the_next_page_is_read_while_the_first_page_is_being_published(slowed_stop: SlowedStop) -> None:
    second_page = slowed_stop.timeline.calls("query")[1]
    first_page = set(slowed_stop.pages[0])
    first_page_batches = [
        call for call in slowed_stop.timeline.calls("put_events") if set(call.message_ids) <= first_page
    ]

    assert second_page.started < min(call.ended for call in first_page_batches)


def test_an_early_batch_is_written_before_a_slower_later_batch_answered(slowed_stop: SlowedStop) -> None:
    slow_ids = set(slowed_stop.slow_batch.message_ids)
    early_writes = [
        call
        for call in slowed_stop.timeline.calls("update_item")
        if call.message_ids[0] in slowed_stop.pages[0] and call.message_ids[0] not in slow_ids
    ]

    assert any(write.started < slowed_stop.slow_batch.ended for write in early_writes)


def test_every_write_starts_after_its_own_event_was_accepted(slowed_stop: SlowedStop) -> None:
    accepted_at = {
        message_id: call.ended
        for call in slowed_stop.timeline.calls("put_events")
        for message_id in call.message_ids
    }

    for write in slowed_stop.timeline.calls("update_item"):
        assert write.started > accepted_at[write.message_ids[0]], write.message_ids[0]


def test_message_ids_follow_the_index_order_not_the_order_writes_completed(
    store: Store, timeline: Timeline, stop: Callable[..., Answer]
) -> None:
    ids = seed_paged_messages(store)

    def in_the_index_own_order(real: Callable[..., Any], request: dict[str, Any]) -> Any:
        # DynamoDB promises no order among items with equal index keys; here each page comes
        # reversed, so that the order read is not the ids' sorted order.
        response = real(**request)
        return {**response, "Items": list(reversed(response["Items"]))}

    def early_writes_slow(real: Callable[..., Any], request: dict[str, Any]) -> Any:
        if request["Key"]["id"]["S"] in timeline.pages_read()[0][:10]:
            time.sleep(0.3)
        return real(**request)

    timeline.observe("dynamodb", "query", in_the_index_own_order)
    timeline.observe("dynamodb", "update_item", early_writes_slow)

    answer = stop()

    read_order = [message_id for page in timeline.pages_read() for message_id in page]
    completion_order = [
        call.message_ids[0] for call in sorted(timeline.calls("update_item"), key=lambda call: call.ended)
    ]
    assert len(timeline.pages_read()) > 1
    assert sorted(read_order) == ids
    assert read_order != ids, "the index order differs from the ids' sorted order"
    assert completion_order != read_order, "writes completed in another order than read"
    assert answer.status == 200
    assert answer.body["messageIds"] == read_order
