"""message-cancel-watch, the agent's library, against moto: what it reports for each status, how
it reads through failures (on a fake clock), and that its sync and asyncio forms stop the step,
run the callbacks once and leave no thread or task behind."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any, cast

import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

from message_cancel_watch import AsyncCancelWatch, CancelWatch, MessageCancelled
from message_cancel_watch.watch import MAX_BACKOFF, NEVER, StatusReader, default_client
from support.client_faults import ClientWithFaults, client_error
from support.fake_clock import FakeClock

MESSAGE = "k58watched00001"
BOUNDED = 10.0  # seconds a test waits for what should take milliseconds; never asserted on


@pytest.fixture
def table(store) -> str:
    store.put_message(MESSAGE)
    return str(store.table_names["MessagesTable"])


def set_status(store, status: str) -> None:
    store.dynamodb.update_item(
        TableName=store.table_names["MessagesTable"],
        Key={"id": {"S": MESSAGE}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": status}},
    )


def reader(store, table: str, client: Any = None, interval: float = 1.0) -> StatusReader:
    return StatusReader(client or store.dynamodb, table, MESSAGE, interval=interval, consistent_read=True)


def run_on(
    clock: FakeClock, status_reader: StatusReader, until: float, at: float, change: Callable[[], None]
):
    """Drive the reader as the watch's thread does, on a fake clock; `change` happens at `at`.
    Returns the fake time the cancel was seen, or None."""
    changed = False
    while clock() < until:
        if not changed and clock() >= at:
            change()
            changed = True
        delay = status_reader.check()
        if delay is None:
            return clock()
        if delay == NEVER:
            return None
        clock.sleep(delay)
    return None


@pytest.mark.parametrize("cancel_after", [0.0, 0.3, 2.5, 7.99])
def test_a_cancel_is_seen_within_one_interval(store, table, cancel_after):
    clock = FakeClock()
    started = clock()
    seen = run_on(
        clock, reader(store, table), until=started + 60, at=started + cancel_after,
        change=lambda: set_status(store, "cancelled"),
    )  # fmt: skip
    assert seen is not None
    assert seen - (started + cancel_after) <= 1.0


@pytest.mark.parametrize("status", ["completed", "failed"])
def test_completed_and_failed_are_never_a_cancel_and_end_the_reads(store, table, status):
    client = ClientWithFaults(store.dynamodb)
    clock = FakeClock()
    seen = run_on(clock, reader(store, table, client), until=clock() + 60, at=clock() + 3,
                  change=lambda: set_status(store, status))  # fmt: skip
    assert seen is None
    assert len(client.calls) == 4  # reads at 0, 1, 2, 3 s: the last one sees the final status


@pytest.mark.parametrize("status", ["processing", "pending", "CANCELLED", "cancelled "])
def test_other_statuses_keep_the_step_working(store, table, status):
    set_status(store, status)
    assert reader(store, table).check() == 1.0


def test_a_missing_message_is_not_a_cancel(store, table):
    missing = StatusReader(store.dynamodb, table, "k58nosuchmsg0001", interval=1.0, consistent_read=True)
    assert missing.check() == 1.0


def test_the_read_asks_for_the_status_alone_with_the_chosen_consistency(store, table):
    client = ClientWithFaults(store.dynamodb)
    StatusReader(cast(Any, client), table, MESSAGE, interval=1.0, consistent_read=False).check()
    [(operation, request)] = client.calls
    assert operation == "get_item"
    assert request["ProjectionExpression"] == "#status"
    assert request["ExpressionAttributeNames"] == {"#status": "status"}
    assert request["ConsistentRead"] is False


FAULTS = [
    client_error("ProvisionedThroughputExceededException", "GetItem"),
    client_error("ThrottlingException", "GetItem"),
    client_error("InternalServerError", "GetItem"),
    client_error("AccessDeniedException", "GetItem"),
    EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com"),
    ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com"),
]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda fault: type(fault).__name__ + str(fault)[:40])
def test_failing_reads_back_off_never_cancel_and_recover(store, table, fault, caplog):
    client = ClientWithFaults(store.dynamodb)
    failures = 6

    def fail_then_read(**request: Any) -> Any:
        if sum(1 for operation, _ in client.calls if operation == "get_item") <= failures:
            raise fault
        return store.dynamodb.get_item(**request)

    client.intercept["get_item"] = fail_then_read
    status_reader = reader(store, table, client)
    caplog.set_level(logging.INFO, logger="message_cancel_watch")

    delays = [status_reader.check() for _ in range(failures)]
    assert delays == [2.0, 4.0, MAX_BACKOFF, MAX_BACKOFF, MAX_BACKOFF, MAX_BACKOFF]
    assert status_reader.check() == 1.0  # recovered: back to the interval
    set_status(store, "cancelled")
    assert status_reader.check() is None  # and a cancel after the failures is seen

    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == failures
    assert MESSAGE in warnings[0].getMessage()
    assert any("works again after 6 failures" in record.getMessage() for record in caplog.records)


def test_the_sync_watch_stops_the_step_runs_callbacks_once_and_leaves_no_thread(store, table):
    threads_before = set(threading.enumerate())
    calls: list[str] = []

    def broken() -> None:
        calls.append("broken")
        raise RuntimeError("a callback that fails does not stop the others")

    words_written = 0
    with CancelWatch(
        MESSAGE, table_name=table, client=store.dynamodb, interval=0.01,
        on_cancel=[broken, lambda: calls.append("close stream")],
    ) as watch:  # fmt: skip
        assert not watch.cancelled
        words_written += 1
        set_status(store, "cancelled")
        assert watch.wait(BOUNDED)
        with pytest.raises(MessageCancelled) as raised:
            watch.raise_if_cancelled()
        assert raised.value.message_id == MESSAGE
        watch.on_cancel(lambda: calls.append("added late"))  # already cancelled: runs at once
        assert watch.wait(0)  # the flag stays set
    assert calls == ["broken", "close stream", "added late"]
    assert set(threading.enumerate()) == threads_before
    assert words_written == 1


def test_the_sync_watch_that_sees_no_cancel_leaves_no_thread(store, table):
    threads_before = set(threading.enumerate())
    called = []
    with CancelWatch(MESSAGE, table_name=table, client=store.dynamodb, interval=0.01,
                     on_cancel=[lambda: called.append(1)]) as watch:  # fmt: skip
        assert not watch.wait(0.05)
        watch.raise_if_cancelled()
    assert set(threading.enumerate()) == threads_before
    assert called == []
    assert not watch.cancelled


def test_the_sync_watch_keeps_the_step_working_through_failing_reads(store, table):
    client = ClientWithFaults(store.dynamodb)

    def throttled(**_: Any) -> Any:
        raise client_error("ThrottlingException", "GetItem")

    client.intercept["get_item"] = throttled
    with CancelWatch(MESSAGE, table_name=table, client=cast(Any, client), interval=0.001) as watch:
        while len(client.calls) < 3:
            assert not watch.wait(0.01)
        assert not watch.cancelled
        del client.intercept["get_item"]
        set_status(store, "cancelled")
        assert watch.wait(BOUNDED)  # the backoff is at most MAX_BACKOFF x 0.001 s here


def test_the_async_watch_cancels_and_awaits_the_work(store, table):
    threads_before = set(threading.enumerate())
    events: list[str] = []

    async def stream_answer() -> None:
        try:
            set_status(store, "cancelled")
            await asyncio.sleep(BOUNDED * 10)
            events.append("ran to its end")
        except asyncio.CancelledError:
            await asyncio.sleep(0)  # the work's own clean-up awaits, and is awaited
            events.append("cleaned up")
            raise

    async def step() -> AsyncCancelWatch:
        watch = AsyncCancelWatch(MESSAGE, table_name=table, client=store.dynamodb, interval=0.01,
                                 on_cancel=[lambda: events.append("callback")])  # fmt: skip
        tasks_before = asyncio.all_tasks()
        with pytest.raises(MessageCancelled):
            async with watch:
                await stream_answer()
        assert asyncio.all_tasks() == tasks_before
        current = asyncio.current_task()
        assert current is not None
        assert current.cancelling() == 0  # the task itself goes on
        await asyncio.sleep(0)
        return watch

    watch = asyncio.run(asyncio.wait_for(step(), BOUNDED))
    assert watch.cancelled
    assert events == ["callback", "cleaned up"]
    assert set(threading.enumerate()) == threads_before


def test_the_async_watch_without_a_cancel_returns_the_result_and_leaves_nothing(store, table):
    threads_before = set(threading.enumerate())

    async def step() -> str:
        tasks_before = asyncio.all_tasks()
        async with AsyncCancelWatch(MESSAGE, table_name=table, client=store.dynamodb, interval=0.01) as watch:
            await asyncio.sleep(0.05)
            answer = "done"
        assert not watch.cancelled
        assert asyncio.all_tasks() == tasks_before
        return answer

    assert asyncio.run(step()) == "done"
    assert set(threading.enumerate()) == threads_before


def test_the_async_watch_does_not_swallow_an_outer_cancel(store, table):
    threads_before = set(threading.enumerate())

    async def step() -> None:
        async with AsyncCancelWatch(MESSAGE, table_name=table, client=store.dynamodb, interval=0.01):
            await asyncio.sleep(BOUNDED * 10)

    async def main() -> None:
        tasks_before = asyncio.all_tasks()
        task = asyncio.create_task(step())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert asyncio.all_tasks() == tasks_before

    asyncio.run(asyncio.wait_for(main(), BOUNDED))
    assert set(threading.enumerate()) == threads_before


def test_a_watch_is_entered_once_and_needs_a_positive_interval(store, table):
    with pytest.raises(ValueError, match="interval"):
        CancelWatch(MESSAGE, table_name=table, client=store.dynamodb, interval=0)
    watch = CancelWatch(MESSAGE, table_name=table, client=store.dynamodb, interval=0.01)
    with watch, pytest.raises(RuntimeError, match="entered once"), watch:
        pass


def test_watches_given_no_client_share_one_with_short_timeouts(store, table):
    client = default_client()
    assert default_client() is client
    config: Any = client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (1, 2)
    assert config.retries["mode"] == "standard"
    assert config.retries["total_max_attempts"] == 2  # a read and one retry, then the watch's backoff
    set_status(store, "cancelled")
    with CancelWatch(MESSAGE, table_name=table, interval=0.01) as watch:  # reads with that client
        assert watch.wait(BOUNDED)
