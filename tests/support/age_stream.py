"""The messages table's stream handed to AgeIndexFunction's handler in-process, the way its event
source mapping hands it over (devstack.stream_source: the template's filter, batches, checkpoint
and redelivery after a reported failure), whenever a test says so."""

from __future__ import annotations

from typing import Any

from cancel_service.handlers import age_index_stream
from devstack.lambdas import Invocation
from devstack.stream_source import ShardReader, StreamSource
from support.lambda_context import LambdaContext


class AgeStream:
    def __init__(self, dynamodb: Any, streams: Any, messages_table: str, template: dict[str, Any]) -> None:
        stream_arn = dynamodb.describe_table(TableName=messages_table)["Table"]["LatestStreamArn"]
        event = template["Resources"]["AgeIndexFunction"]["Properties"]["Events"]["MessageChanged"]
        source = StreamSource.of({**event["Properties"], "Stream": stream_arn})
        [shard] = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
        self._reader = ShardReader(streams, source, shard["ShardId"])
        self.failed_batches = 0

    def skip(self) -> None:
        """Pass over every record written so far, as if the stream began after them (a table
        written before its stream was turned on)."""
        while batch := self._reader.batch():
            self._reader.done(batch, Invocation("skipped", result={}))

    def deliver(self, *, attempts: int = 5) -> int:
        """Every record written so far, delivered until handled (a failed batch again, up to
        `attempts` times); the number of invocations."""
        invocations = 0
        failures_in_a_row = 0
        while batch := self._reader.batch():
            invocations += 1
            try:
                result = age_index_stream.handler({"Records": batch}, LambdaContext())
                invocation = Invocation("local", result=result)
            except Exception as error:  # Lambda's view: the invocation failed
                invocation = Invocation("local", error={"errorMessage": str(error)})
            if self._reader.done(batch, invocation):
                failures_in_a_row = 0
                continue
            self.failed_batches += 1
            failures_in_a_row += 1
            if failures_in_a_row >= attempts:
                raise AssertionError(f"a stream batch failed {attempts} times in a row")
        return invocations
