"""A function's SQS event source, polled as Lambda's event source mapping does it.

Batches of up to BatchSize, filled for up to MaximumBatchingWindowInSeconds after their first
message, at most ScalingConfig.MaximumConcurrency in flight (one poller each). What succeeded is
deleted (with ReportBatchItemFailures, all but the listed records; none when the invocation
failed); the rest comes back after the queue's visibility timeout, and the queue's redrive
policy (moto applies it on receive) moves it to its dead-letter queue in the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from devstack.aws import LocalAws
from devstack.background import Background
from devstack.constants import REGION
from devstack.lambdas import FunctionPool, Invocation

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

# A received SQS message: boto3's, or a plain dict in the tests.
Message = TypeVar("Message", bound=Mapping[str, Any])


@dataclass(frozen=True)
class SqsSource:
    """A function's SQS event source, with Lambda's defaults for what the template leaves out."""

    queue_arn: str
    queue_url: str
    batch_size: int
    batching_window_seconds: float
    maximum_concurrency: int
    reports_item_failures: bool

    @classmethod
    def of(cls, props: dict[str, Any], queue_url: str) -> SqsSource:
        scaling = props.get("ScalingConfig") or {}
        return cls(
            queue_arn=str(props["Queue"]),
            queue_url=queue_url,
            batch_size=int(props.get("BatchSize", 10)),
            batching_window_seconds=float(props.get("MaximumBatchingWindowInSeconds", 0)),
            # Without a maximum, Lambda starts with five batches at once and scales from there.
            maximum_concurrency=int(scaling.get("MaximumConcurrency", 5)),
            reports_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
        )


def sqs_record(message: Mapping[str, Any], queue_arn: str) -> dict[str, Any]:
    """The record of an SQS event for a received message, as Lambda builds it."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def succeeded_messages(
    messages: list[Message], invocation: Invocation, *, reports_item_failures: bool
) -> list[Message]:
    """The messages of a batch that Lambda deletes after the invocation.

    None when the invocation failed. With ReportBatchItemFailures, all but those the response
    lists in batchItemFailures (none listed: all); a listed identifier that is empty or not in
    the batch makes the whole batch a failure, as in Lambda. Without it, the response is not read.
    """
    if invocation.failed:
        return []
    result = invocation.result
    failures = result.get("batchItemFailures") if reports_item_failures and isinstance(result, dict) else None
    if not failures:
        return messages
    failed = {failure.get("itemIdentifier") if isinstance(failure, dict) else None for failure in failures}
    if not failed <= {message["MessageId"] for message in messages}:
        return []
    return [message for message in messages if message["MessageId"] not in failed]


def start_pollers(
    source: SqsSource, pool: FunctionPool, aws: LocalAws, background: Background, log: Callable[[str], None]
) -> None:
    """One poller per batch in flight: at most MaximumConcurrency at once."""
    for index in range(source.maximum_concurrency):
        poller = _Poller(source, pool, aws.sqs(), background, log)
        background.spawn(poller.run, f"sqs-{pool.spec.logical_id}-{index}")


class _Poller:
    def __init__(
        self,
        source: SqsSource,
        pool: FunctionPool,
        sqs: SQSClient,
        background: Background,
        log: Callable[[str], None],
    ) -> None:
        self._source, self._pool, self._sqs, self._log = source, pool, sqs, log
        self._stopping = background.stopping

    def run(self) -> None:
        """A batch at a time, deleting what succeeded, until the stack stops."""
        source, function = self._source, self._pool.spec.logical_id
        while not self._stopping.is_set():
            try:
                messages = self._receive_batch()
            except Exception:  # noqa: BLE001 - moto is stopping
                if self._stopping.is_set():
                    return
                time.sleep(0.5)
                continue
            if not messages:
                continue
            records = [sqs_record(message, source.queue_arn) for message in messages]
            try:
                invocation = self._pool.invoke({"Records": records})
            except RuntimeError:  # the pool is closed: the local stack is stopping
                return
            done = succeeded_messages(
                messages, invocation, reports_item_failures=source.reports_item_failures
            )
            if len(done) < len(messages):
                self._log(f"! {function}: {len(messages) - len(done)} of {len(messages)} SQS records failed")
            self._delete(done)

    def _delete(self, messages: list[MessageTypeDef]) -> None:
        for first in range(0, len(messages), 10):  # SQS deletes at most 10 per call
            self._sqs.delete_message_batch(
                QueueUrl=self._source.queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                    for index, message in enumerate(messages[first : first + 10])
                ],
            )

    def _receive_batch(self) -> list[MessageTypeDef]:
        """The first message(s) after a long poll of up to 1 s, then more until the batch is full
        or the batching window is over."""
        size = self._source.batch_size
        messages = self._receive(size, wait_seconds=1)
        window_ends = time.monotonic() + self._source.batching_window_seconds
        while messages and len(messages) < size and not self._stopping.is_set():
            remaining = window_ends - time.monotonic()
            if remaining <= 0:
                break
            more = self._receive(size - len(messages), wait_seconds=int(remaining))
            if not more and remaining < 1:
                self._stopping.wait(min(remaining, 0.1))  # SQS waits whole seconds only
            messages += more
        return messages

    def _receive(self, count: int, *, wait_seconds: int) -> list[MessageTypeDef]:
        return self._sqs.receive_message(
            QueueUrl=self._source.queue_url,
            MaxNumberOfMessages=min(count, 10),
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
