"""The age index against moto: kept from the messages table's real stream records, read across
every shard oldest first, never selecting a finished message, healing what lags or was lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cancel_service import runtime
from cancel_service.adapters.age_index import AgeIndex, shard_of
from cancel_service.errors import DependencyUnavailable
from cancel_service.handlers import bulk_cancel
from cancel_service.models import utc_timestamp
from support.age_stream import AgeStream
from support.bulk_scene import bulk_event, roomy_context
from support.constants import AGE_INDEX_SHARDS, TABLE_NAMES
from support.lambda_context import BudgetContext
from support.store import Store

NOW = datetime.now(UTC)
CUTOFF = utc_timestamp(NOW - timedelta(hours=1))


def ago(minutes: float) -> str:
    return utc_timestamp(NOW - timedelta(minutes=minutes))


def entries(store: Store) -> dict[str, dict[str, Any]]:
    items = store.dynamodb.scan(TableName=TABLE_NAMES["AgeIndexTable"])["Items"]
    return {
        item["id"]["S"]: {"shard": int(item["shard"]["N"]), "position": item["position"]["S"]}
        for item in items
    }


def set_message(store: Store, message_id: str, **values: str) -> None:
    names = {f"#{name}": name for name in values}
    store.dynamodb.update_item(
        TableName=TABLE_NAMES["MessagesTable"],
        Key={"id": {"S": message_id}},
        UpdateExpression="SET " + ", ".join(f"#{name} = :{name}" for name in values),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={f":{name}": {"S": value} for name, value in values.items()},
    )


def read_all(index: AgeIndex, cutoff: str, limit: int) -> tuple[list[str], int]:
    """Every page from the oldest, each from where the last stopped, as continuations do."""
    found: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        page = index.stale_page(cutoff, after, limit)
        pages += 1
        found += [message.id for message in page.messages]
        if page.after is None:
            return found, pages
        after = page.after


# --- kept from the stream ---------------------------------------------------------------------------


def test_a_message_entering_processing_gets_one_entry_and_leaving_removes_it(store, age_stream: AgeStream):
    store.put_message("m1", status="pending", updated_at=ago(90))
    age_stream.deliver()
    assert entries(store) == {}

    set_message(store, "m1", status="processing", updatedAt=ago(80))
    age_stream.deliver()
    assert entries(store) == {"m1": {"shard": shard_of("m1", AGE_INDEX_SHARDS), "position": f"{ago(80)}#m1"}}

    # An update while processing writes nothing: the entry keeps its earlier position.
    set_message(store, "m1", updatedAt=ago(70))
    age_stream.deliver()
    assert entries(store)["m1"]["position"] == f"{ago(80)}#m1"

    set_message(store, "m1", status="completed", updatedAt=ago(60))
    age_stream.deliver()
    assert entries(store) == {}


def test_a_message_deleted_while_processing_loses_its_entry(store, age_stream: AgeStream):
    store.put_message("m1", updated_at=ago(90))
    age_stream.deliver()
    store.dynamodb.delete_item(TableName=TABLE_NAMES["MessagesTable"], Key={"id": {"S": "m1"}})
    age_stream.deliver()
    assert entries(store) == {}


def test_changes_that_never_touch_processing_are_filtered_out_before_the_function(
    store, age_stream: AgeStream
):
    store.put_message("m1", status="pending")
    store.put_message("m2", status="completed")
    set_message(store, "m2", agentStoppedAt=ago(1))

    assert age_stream.deliver() == 0
    assert entries(store) == {}


def test_a_processing_message_without_a_usable_age_is_left_out_and_does_not_hold_the_stream(
    store, age_stream: AgeStream, log_lines
):
    store.dynamodb.put_item(
        TableName=TABLE_NAMES["MessagesTable"],
        Item={"id": {"S": "ageless"}, "projectId": {"S": "p1"}, "status": {"S": "processing"}},
    )
    store.put_message("m1", updated_at=ago(90))

    age_stream.deliver()

    assert set(entries(store)) == {"m1"}
    assert age_stream.failed_batches == 0
    assert any(line.get("message_id") == "ageless" for line in log_lines())


def test_a_failed_write_is_delivered_again_from_its_record_and_ends_where_one_delivery_does(
    store, age_stream: AgeStream, monkeypatch
):
    for n in range(6):
        store.put_message(f"m{n}", updated_at=ago(90 + n))
    set_message(store, "m1", status="completed", updatedAt=ago(50))
    real = AgeIndex.processing
    failures = iter([True])

    def flaky(index: AgeIndex, message_id: str, updated_at: str) -> None:
        if message_id == "m3" and next(failures, False):
            raise DependencyUnavailable("dynamodb")
        real(index, message_id, updated_at)

    monkeypatch.setattr(AgeIndex, "processing", flaky)

    age_stream.deliver()

    assert age_stream.failed_batches == 1
    assert set(entries(store)) == {"m0", "m2", "m3", "m4", "m5"}


def test_messages_spread_over_every_shard(store, age_stream: AgeStream):
    for n in range(40):
        store.put_message(f"m{n:02d}", updated_at=ago(90 + n))
    age_stream.deliver()
    assert {entry["shard"] for entry in entries(store).values()} == set(range(AGE_INDEX_SHARDS))


# --- read by the bulk by age and the stale sweep -------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 3, 7, 100])
def test_every_stale_message_is_found_across_all_shards_oldest_first_page_after_page(
    store, age_stream: AgeStream, limit
):
    expected = []
    for n in range(40):  # m39 the oldest; every third one recent, every seventh finished
        message_id = f"m{n:02d}"
        if n % 3 == 0:
            store.put_message(message_id, updated_at=ago(n))
        elif n % 7 == 0:
            store.put_message(message_id, updated_at=ago(120 + n), status="completed")
        else:
            store.put_message(message_id, updated_at=ago(120 + n))
            expected.append(message_id)
    age_stream.deliver()

    found, pages = read_all(runtime.age_index(), CUTOFF, limit)

    assert found == sorted(expected, reverse=True)  # oldest first, each once
    assert pages >= len(expected) // limit


def test_messages_of_the_same_millisecond_are_each_found_once_across_pages(store, age_stream: AgeStream):
    same = ago(120)
    for n in range(12):
        store.put_message(f"m{n:02d}", updated_at=same)
    age_stream.deliver()

    found, _ = read_all(runtime.age_index(), CUTOFF, 5)

    assert found == [f"m{n:02d}" for n in range(12)]


def test_a_message_that_finished_before_the_index_caught_up_is_never_selected_and_its_entry_goes(
    store, age_stream: AgeStream
):
    store.put_message("done", updated_at=ago(120))
    store.put_message("stuck", updated_at=ago(110))
    age_stream.deliver()
    set_message(store, "done", status="completed", updatedAt=ago(1))  # not delivered: the index lags

    page = runtime.age_index().stale_page(CUTOFF, None, 10)

    assert [message.id for message in page.messages] == ["stuck"]
    assert set(entries(store)) == {"stuck"}


def test_a_message_updated_since_its_entry_is_read_at_its_own_age(store, age_stream: AgeStream):
    store.put_message("a", updated_at=ago(300))
    store.put_message("b", updated_at=ago(200))
    store.put_message("c", updated_at=ago(250))
    store.put_message("alive", updated_at=ago(400))
    age_stream.deliver()
    set_message(store, "a", updatedAt=ago(150))  # still stale, now younger than b and c
    set_message(store, "alive", updatedAt=ago(1))  # no longer stale
    age_stream.deliver()

    found, _ = read_all(runtime.age_index(), CUTOFF, 100)

    assert found == ["c", "b", "a"]
    assert entries(store)["a"]["position"] == f"{ago(150)}#a"
    assert entries(store)["alive"]["position"] == f"{ago(1)}#alive"  # moved: not read again until stale


def test_an_entry_the_backfill_wrote_late_is_checked_like_any_other(store):
    store.put_message("m1", updated_at=ago(120), status="completed")
    runtime.age_index().processing("m1", ago(130))  # a backfill that read m1 before it completed

    assert runtime.age_index().stale_page(CUTOFF, None, 10).messages == ()
    assert entries(store) == {}


@pytest.mark.usefixtures("store")
def test_a_failed_read_is_a_dependency_failure(monkeypatch):
    def refused(**_: Any) -> Any:
        raise DependencyUnavailable("dynamodb")

    index = runtime.age_index()
    monkeypatch.setattr(index, "_shard_page", lambda *_: refused())
    with pytest.raises(DependencyUnavailable):
        index.stale_page(CUTOFF, None, 10)


# --- the bulk by age and the sweep on the age index ----------------------------------------------------


def test_the_sweep_cancels_every_stale_message_across_shards_through_continuations(store, route):
    continuations = route("BulkCancelFunction", "BulkCancelRequested")
    stale = [f"s{n:03d}" for n in range(250)]  # s000 the oldest
    for n, message_id in enumerate(stale):
        store.put_message(message_id, project_id=f"p{n % 3}", updated_at=ago(500 - n))
    store.put_message("fresh", updated_at=ago(5))
    store.put_message("finished", status="completed", updated_at=ago(600))
    pending = [bulk_event({"olderThanSeconds": 3600, "reason": "stale_processing"}, source="app.schedule")]
    reported: list[str] = []
    invocations = 0

    while pending:
        assert len(pending) == 1  # one chain
        invocations += 1
        # Time for about one page per invocation: page boundaries become continuations.
        answer = bulk_cancel.handler(pending.pop(), BudgetContext(remaining_ms=25_000, step_ms=10_000))
        reported += answer.get("messageIds", [])
        pending += continuations.take()

    assert invocations > 2
    assert reported == stale  # oldest first, each once, across shards and continuations
    assert {store.status(message_id) for message_id in stale} == {"cancelled"}
    assert store.status("fresh") == "processing"
    assert store.status("finished") == "completed"


def test_a_message_that_completes_while_the_sweep_reads_it_is_never_cancelled(store, monkeypatch):
    store.put_message("racer", updated_at=ago(120))
    store.put_message("stuck", updated_at=ago(110))
    read = AgeIndex.stale_page

    def agent_completes_after_the_read(index: AgeIndex, cutoff: str, after: str | None, limit: int) -> Any:
        page = read(index, cutoff, after, limit)
        if any(message.id == "racer" for message in page.messages):
            set_message(store, "racer", status="completed", updatedAt=ago(0))
        return page

    monkeypatch.setattr(AgeIndex, "stale_page", agent_completes_after_the_read)

    bulk_cancel.handler(bulk_event({"olderThanSeconds": 3600}), roomy_context())

    assert store.status("racer") == "completed"
    assert store.status("stuck") == "cancelled"
