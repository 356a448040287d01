"""The cancel core's schedule: which calls overlap and which wait for which (the project and the
first page read together, nothing published before the project answered, the next page read
while the first is published, each write after its own event), and the order of the answer.

The core runs against in-memory stand-ins on a deterministic executor: the test chooses in which
order the calls in flight complete, and reads the order things happened from its log."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from cancel_service.core.cancel import CancelResult, CancelService
from cancel_service.models import Caller, Project
from support.constants import OWNER, PROJECT
from support.in_memory import (
    Call,
    Chooser,
    InMemoryMessages,
    InMemoryProjects,
    RecordingEvents,
    ScriptedCalls,
    slowest_last,
)

PAGED_MESSAGES = 36
PAGE_SIZE = 25  # the first page has three PutEvents batches, the second two


@dataclass
class Stop:
    result: CancelResult
    calls: ScriptedCalls
    messages: InMemoryMessages

    def pages(self) -> list[list[str]]:
        return [call.message_ids for call in self.calls.calls("processing_in_project_page")]


def stop(choose: Chooser, *, index_order_reversed: bool = False) -> Stop:
    messages = InMemoryMessages(page_size=PAGE_SIZE)
    messages.add(PAGED_MESSAGES)
    if index_order_reversed:
        # The index promises no order among equal keys: here it is not the ids' sorted order.
        messages.stored = dict(reversed(messages.stored.items()))
    calls = ScriptedCalls(choose)
    service = CancelService(InMemoryProjects(Project(PROJECT, OWNER)), messages, RecordingEvents(), calls)
    result = service.cancel_project_for(Caller(OWNER, "sess_1"), PROJECT, "req_1")
    return Stop(result, calls, messages)


@pytest.fixture
def slowed_stop() -> Stop:
    """A Stop over two pages whose calls complete in an order that makes theirs unambiguous: the
    project read is slower than the first page; the first page's PutEvents are slow, and the batch
    holding its last message slowest of all."""
    first_page_ids = {f"m{number:03d}" for number in range(PAGE_SIZE)}
    last_of_first_page = f"m{PAGE_SIZE - 1:03d}"

    def slowness(call: Call) -> int:
        if call.name == "publish_batch" and last_of_first_page in call.message_ids:
            return 4
        if call.name == "publish_batch" and set(call.message_ids) <= first_page_ids:
            return 3
        if call.name == "get":
            return 2
        return 1 if call.name == "processing_in_project_page" else 0

    slowed = stop(slowest_last(slowness))
    assert sorted(slowed.result.cancelled_ids) == sorted(slowed.messages.stored)
    assert [len(page) for page in slowed.pages()] == [PAGE_SIZE, PAGED_MESSAGES - PAGE_SIZE]
    return slowed


def first_page_batches(stop: Stop) -> list[Call]:
    first_page = set(stop.pages()[0])
    return [call for call in stop.calls.calls("publish_batch") if set(call.message_ids) <= first_page]


def test_the_project_and_the_first_page_are_read_together(slowed_stop: Stop) -> None:
    calls = slowed_stop.calls
    [project] = calls.calls("get")
    first_page = calls.calls("processing_in_project_page")[0]

    assert calls.started(first_page) < calls.ended(project)
    assert calls.started(project) < calls.ended(first_page)


def test_nothing_is_published_or_written_before_the_project_answered(slowed_stop: Stop) -> None:
    calls = slowed_stop.calls
    [project] = calls.calls("get")
    first_page = calls.calls("processing_in_project_page")[0]
    publishes_and_writes = calls.calls("publish_batch") + calls.calls("cancel_one")

    assert calls.ended(first_page) < calls.ended(project), (
        "a page was ready to publish while ownership was unknown"
    )
    assert all(calls.started(call) > calls.ended(project) for call in publishes_and_writes)


def test_the_next_page_is_read_while_the_first_page_is_being_published(slowed_stop: Stop) -> None:
    calls = slowed_stop.calls
    second_page = calls.calls("processing_in_project_page")[1]
    batches = first_page_batches(slowed_stop)

    assert len(batches) == 3
    assert calls.started(second_page) < min(calls.ended(batch) for batch in batches)


def test_an_early_batch_is_written_before_a_slower_later_batch_answered(slowed_stop: Stop) -> None:
    calls = slowed_stop.calls
    last_of_first_page = slowed_stop.pages()[0][-1]
    [slow_batch] = [call for call in calls.calls("publish_batch") if last_of_first_page in call.message_ids]
    early_writes = [
        call
        for call in calls.calls("cancel_one")
        if call.message_ids[0] in slowed_stop.pages()[0] and call.message_ids[0] not in slow_batch.message_ids
    ]

    assert early_writes
    assert any(calls.started(write) < calls.ended(slow_batch) for write in early_writes)


def test_every_write_starts_after_its_own_event_was_accepted(slowed_stop: Stop) -> None:
    calls = slowed_stop.calls
    accepted_at = {
        message_id: calls.ended(call)
        for call in calls.calls("publish_batch")
        for message_id in call.message_ids
    }

    assert len(calls.calls("cancel_one")) == PAGED_MESSAGES
    for write in calls.calls("cancel_one"):
        assert calls.started(write) > accepted_at[write.message_ids[0]], write.message_ids[0]


def test_message_ids_follow_the_index_order_not_the_order_writes_completed() -> None:
    early = {f"m{number:03d}" for number in range(PAGED_MESSAGES - 10, PAGED_MESSAGES)}  # read first

    def early_writes_slow(call: Call) -> int:
        return 1 if call.name == "cancel_one" and call.message_ids[0] in early else 0

    reversed_stop = stop(slowest_last(early_writes_slow), index_order_reversed=True)

    calls = reversed_stop.calls
    read_order = [message_id for page in reversed_stop.pages() for message_id in page]
    completion_order = [
        call.message_ids[0] for kind, call in calls.log if kind == "end" and call.name == "cancel_one"
    ]
    assert len(reversed_stop.pages()) > 1
    assert read_order != sorted(read_order), "the index order differs from the ids' sorted order"
    assert completion_order != read_order, "writes completed in another order than read"
    assert list(reversed_stop.result.cancelled_ids) == read_order
