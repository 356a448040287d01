"""A function's DynamoDB stream event source, polled as Lambda's event source mapping does it.

Each stream shard is read in order from StartingPosition by one poller. Records that the
FilterCriteria's patterns do not match are passed over (Lambda drops them too); the others go to
the function in batches of up to BatchSize, filled for up to MaximumBatchingWindowInSeconds.
After a failed invocation the same batch comes again; with ReportBatchItemFailures, the batch
comes again from the first record the function reported (its checkpoint). Retries last as long
as the stack runs (MaximumRetryAttempts -1, Lambda's default for streams), a second apart.
ParallelizationFactor is not reproduced: one batch at a time per shard.

moto numbers a stream record by the length of its list before it appends it, so writes to a
table in parallel can give two records one sequence number; GetRecords' next iterator, just after
the highest number returned, then points back into them, and reads them again for as long as
they end the stream. A record is told by its eventID instead: each is delivered once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moto.events.models import EventPattern

from devstack.background import Background
from devstack.lambdas import FunctionPool, Invocation

RETRY_DELAY = 1.0
POLL_INTERVAL = 0.2


@dataclass(frozen=True)
class StreamSource:
    """A function's DynamoDB event source, with Lambda's defaults for what the template leaves out."""

    stream_arn: str
    starting_position: str
    batch_size: int
    batching_window_seconds: float
    patterns: tuple[EventPattern, ...]
    reports_item_failures: bool

    @classmethod
    def of(cls, props: dict[str, Any]) -> StreamSource:
        filters = (props.get("FilterCriteria") or {}).get("Filters") or []
        return cls(
            stream_arn=str(props["Stream"]),
            starting_position=str(props.get("StartingPosition", "LATEST")),
            batch_size=int(props.get("BatchSize", 100)),
            batching_window_seconds=float(props.get("MaximumBatchingWindowInSeconds", 0)),
            patterns=tuple(EventPattern.load(str(f["Pattern"])) for f in filters),
            reports_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
        )

    def delivers(self, record: dict[str, Any]) -> bool:
        # moto's matcher reads any mapping, though typed for an EventBridge event.
        return not self.patterns or any(pattern.matches_event(record) for pattern in self.patterns)  # type: ignore[arg-type]


def lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record as Lambda hands it over: with its stream's ARN, times in epoch seconds."""
    change = dict(record["dynamodb"])
    created = change.get("ApproximateCreationDateTime")
    if created is not None and hasattr(created, "timestamp"):
        change["ApproximateCreationDateTime"] = int(created.timestamp())
    lambda_shaped: dict[str, Any] = json.loads(
        json.dumps({**record, "dynamodb": change, "eventSourceARN": stream_arn})
    )
    return lambda_shaped


class ShardReader:
    """One stream shard read in order from a checkpoint that moves only when told to."""

    def __init__(self, streams: Any, source: StreamSource, shard_id: str) -> None:
        self._streams, self._source, self._shard_id = streams, source, shard_id
        self._iterator: str = streams.get_shard_iterator(
            StreamArn=source.stream_arn, ShardId=shard_id, ShardIteratorType=source.starting_position
        )["ShardIterator"]
        self._pending: list[dict[str, Any]] = []  # read, delivered or not, after the checkpoint
        self._read: set[str] = set()  # eventIDs of every record read

    def batch(self) -> list[dict[str, Any]]:
        """The next records to deliver (filtered), up to BatchSize; none read yet: empty."""
        while len(self._pending) < self._source.batch_size:
            response = self._streams.get_records(ShardIterator=self._iterator, Limit=1000)
            records = [
                record for record in response.get("Records", []) if record["eventID"] not in self._read
            ]
            self._iterator = response.get("NextShardIterator") or self._iterator
            if not records:
                break
            self._read.update(record["eventID"] for record in records)
            self._pending += [lambda_record(record, self._source.stream_arn) for record in records]
        self._pending = [record for record in self._pending if self._source.delivers(record)]
        return self._pending[: self._source.batch_size]

    def done(self, batch: list[dict[str, Any]], invocation: Invocation) -> bool:
        """Move the checkpoint past what the invocation handled; False: it failed (all or part)."""
        if invocation.failed:
            return False
        failures = invocation.result.get("batchItemFailures") if isinstance(invocation.result, dict) else None
        if not self._source.reports_item_failures or not failures:
            self._pending = self._pending[len(batch) :]
            return True
        sequences = [record["dynamodb"]["SequenceNumber"] for record in batch]
        failed = {failure.get("itemIdentifier") for failure in failures if isinstance(failure, dict)}
        if not failed <= set(sequences):  # an identifier not in the batch: the whole batch failed
            return False
        first = min(sequences.index(sequence) for sequence in failed)
        self._pending = self._pending[first:]
        return False


def start_stream_pollers(
    source: StreamSource, pool: FunctionPool, streams: Any, background: Background, log: Callable[[str], None]
) -> None:
    """One poller per shard of the stream."""
    shards = streams.describe_stream(StreamArn=source.stream_arn)["StreamDescription"]["Shards"]
    for shard in shards:
        reader = ShardReader(streams, source, shard["ShardId"])
        background.spawn(
            _poll, f"stream-{pool.spec.logical_id}-{shard['ShardId']}", reader, source, pool, background, log
        )


def _poll(
    reader: ShardReader,
    source: StreamSource,
    pool: FunctionPool,
    background: Background,
    log: Callable[[str], None],
) -> None:
    function = pool.spec.logical_id
    while not background.stopping.is_set():
        try:
            batch = reader.batch()
            if batch and len(batch) < source.batch_size and source.batching_window_seconds:
                background.stopping.wait(source.batching_window_seconds)
                batch = reader.batch()
        except Exception:  # noqa: BLE001 - moto is stopping
            if background.stopping.is_set():
                return
            background.stopping.wait(RETRY_DELAY)
            continue
        if not batch:
            background.stopping.wait(POLL_INTERVAL)
            continue
        try:
            invocation = pool.invoke({"Records": batch})
        except RuntimeError:  # the pool is closed: the local stack is stopping
            return
        if not reader.done(batch, invocation):
            log(f"! {function}: stream batch failed; delivered again from its checkpoint")
            background.stopping.wait(RETRY_DELAY)
