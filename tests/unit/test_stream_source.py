"""The local stack's stream reader (devstack.stream_source) over a stream whose sequence numbers
repeat, as moto's do when writes to a table run in parallel (it numbers a record by the length of
its list before it appends): each record is delivered once, and a reading ends."""

from __future__ import annotations

from typing import Any

from devstack.lambdas import Invocation
from devstack.stream_source import ShardReader, StreamSource

START = 1_000


class RepeatingStream:
    """GetRecords as moto answers it: records from the iterator's position in the list, and a
    next iterator just after the highest sequence number returned."""

    def __init__(self, sequence_numbers: list[int]) -> None:
        self.records = [self.record(n, sequence) for n, sequence in enumerate(sequence_numbers)]
        self.reads = 0

    @staticmethod
    def record(n: int, sequence: int) -> dict[str, Any]:
        return {
            "eventID": f"event-{n}",
            "eventName": "MODIFY",
            "dynamodb": {"Keys": {"id": {"S": f"m{n}"}}, "SequenceNumber": str(START + sequence)},
        }

    def get_shard_iterator(self, **_: Any) -> dict[str, str]:
        return {"ShardIterator": "0"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        self.reads += 1
        records = self.records[int(ShardIterator) :][:Limit]
        if not records:
            return {"Records": [], "NextShardIterator": ShardIterator}
        highest = max(int(record["dynamodb"]["SequenceNumber"]) for record in records)
        return {"Records": records, "NextShardIterator": str(highest - START + 1)}


def reader(stream: RepeatingStream) -> ShardReader:
    source = StreamSource.of({"Stream": "arn:stream", "StartingPosition": "TRIM_HORIZON"})
    return ShardReader(stream, source, "shard-1")


def test_records_that_share_a_sequence_number_at_the_streams_end_are_delivered_once():
    # Three writes in parallel numbered alike: GetRecords points back into them after each read.
    stream = RepeatingStream([0, 1, 2, 2, 2])
    shard = reader(stream)

    batch = shard.batch()

    assert [record["eventID"] for record in batch] == [f"event-{n}" for n in range(5)]
    assert stream.reads < 5
    assert shard.done(batch, Invocation("local", result={}))
    assert shard.batch() == []  # read again from the repeated ones: nothing new


def test_a_record_written_after_the_repeated_ones_is_delivered_next():
    stream = RepeatingStream([0, 1, 1])
    shard = reader(stream)
    first = shard.batch()
    shard.done(first, Invocation("local", result={}))

    stream.records.append(RepeatingStream.record(3, 3))

    assert [record["eventID"] for record in shard.batch()] == ["event-3"]
