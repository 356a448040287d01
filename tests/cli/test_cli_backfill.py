"""`cancel-service backfill-age-index`: the messages processing before the stream began enter the
age index, once, whatever the stream already entered; the sweep then finds them."""

from __future__ import annotations

from typing import Any

import pytest

from cancel_service.handlers import bulk_cancel
from cancel_service_cli import main
from support.age_stream import AgeStream
from support.bulk_scene import LONG_AGO, RECENTLY, bulk_event, roomy_context
from support.constants import AGE_INDEX_SHARDS, TABLE_NAMES
from support.store import Store

COMMAND = [
    "backfill-age-index",
    "--messages-table",
    TABLE_NAMES["MessagesTable"],
    "--age-index-table",
    TABLE_NAMES["AgeIndexTable"],
    "--shards",
    str(AGE_INDEX_SHARDS),
    "--segments",
    "3",
]


def positions(store: Store) -> dict[str, str]:
    items = store.dynamodb.scan(TableName=TABLE_NAMES["AgeIndexTable"])["Items"]
    return {item["id"]["S"]: item["position"]["S"] for item in items}


@pytest.fixture
def deployed_before_the_stream(store: Store, age_stream: AgeStream) -> Store:
    """A messages table written before its stream was turned on."""
    for n in range(30):
        store.put_message(f"old{n:02d}", updated_at=LONG_AGO)
    store.put_message("busy", updated_at=RECENTLY)
    store.put_message("done", status="completed", updated_at=LONG_AGO)
    store.put_message("waiting", status="pending", updated_at=LONG_AGO)
    store.dynamodb.put_item(  # no updatedAt: no age to index
        TableName=TABLE_NAMES["MessagesTable"],
        Item={"id": {"S": "ageless"}, "projectId": {"S": "p1"}, "status": {"S": "processing"}},
    )
    age_stream.skip()
    return store


def test_backfill_enters_every_processing_message_once_and_runs_again_harmlessly(
    deployed_before_the_stream: Store, capsys: Any
):
    store = deployed_before_the_stream
    assert positions(store) == {}

    assert main(COMMAND) == 0
    first = positions(store)
    assert main(COMMAND) == 0

    assert set(first) == {f"old{n:02d}" for n in range(30)} | {"busy"}
    assert positions(store) == first
    assert "31 processing messages" in capsys.readouterr().out


def test_backfill_keeps_what_the_stream_already_entered(
    deployed_before_the_stream: Store, age_stream: AgeStream
):
    store = deployed_before_the_stream
    store.put_message("busy", updated_at=LONG_AGO)  # a change the stream delivers first
    age_stream.deliver()
    entered_by_stream = positions(store)["busy"]

    assert main(COMMAND) == 0

    assert positions(store)["busy"] == entered_by_stream


def test_after_the_backfill_the_sweep_cancels_the_messages_stuck_since_before_the_stream(
    deployed_before_the_stream: Store,
):
    store = deployed_before_the_stream
    assert main(COMMAND) == 0

    answer = bulk_cancel.handler(bulk_event({"olderThanSeconds": 3600}), roomy_context())

    assert sorted(answer["messageIds"]) == [f"old{n:02d}" for n in range(30)]
    assert store.status("busy") == "processing"
    assert store.status("done") == "completed"


def test_backfill_needs_both_tables_and_the_shard_count(capsys: Any):
    with pytest.raises(SystemExit) as exit_info:
        main(["backfill-age-index", "--messages-table", "m"])
    assert exit_info.value.code == 2
    assert "--age-index-table and --shards" in capsys.readouterr().err
