"""The stand-in agent's step: stream a model's answer into the message, a few words a second,
under message-cancel-watch, as an agent's Lambda task would. When the message is cancelled the
watch closes the model's stream and the step ends where it is, mid-sentence."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from devstack.demo import iso_now
from message_cancel_watch import CancelWatch, MessageCancelled

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

WORDS_PER_SECOND = 4.0
_PARTS = (
    "First I read the failing test and the module it exercises, to see what the code promises "
    "and where the promise breaks.",
    "Then I change the smallest thing that keeps that promise, run the tests again, and look at "
    "what else the change touches before I go on.",
    "Where a name no longer says what the code does, I rename it, so that the next reader does "
    "not have to run the code in their head.",
)
# 1,560 words, six and a half minutes at WORDS_PER_SECOND: long enough to press Stop while it
# streams. The message grows to about 8 KB: the watch's reads then cost two read units each.
ANSWER = " ".join(f"Part {number}. {' '.join(_PARTS)}" for number in range(1, 21))


class ModelStream:
    """Stands in for a model's streamed answer: yields one word per 1/words_per_second seconds
    until the answer ends or the stream is closed (by the watch, or by the stack stopping)."""

    def __init__(
        self,
        stack_stopping: threading.Event,
        text: str = ANSWER,
        words_per_second: float = WORDS_PER_SECOND,
    ) -> None:
        self._words, self._pause = text.split(), 1.0 / words_per_second
        self._closed, self._stack_stopping = threading.Event(), stack_stopping

    @staticmethod
    def seconds(text: str = ANSWER, words_per_second: float = WORDS_PER_SECOND) -> int:
        """How long the whole answer takes to stream, rounded up."""
        return math.ceil(len(text.split()) / words_per_second)

    @property
    def closed(self) -> bool:
        return self._closed.is_set() or self._stack_stopping.is_set()

    def close(self) -> None:
        self._closed.set()

    def __iter__(self) -> Iterator[str]:
        for word in self._words:
            if self._closed.wait(self._pause) or self._stack_stopping.is_set():
                return
            yield word


@dataclass
class StepOutcome:
    """What one step did: `ended` is "completed", "cancelled", "left processing" (the message
    left it another way) or "interrupted" (the stack stopped); `chunk_times` are the wall-clock
    times (time.time()) its chunk writes returned."""

    message_id: str
    ended: str = "running"
    words: int = 0
    chunk_times: list[float] = field(default_factory=list)
    ended_at: float = 0.0


def stream_answer(
    dynamodb: DynamoDBClient, table_name: str, message_id: str, stream: ModelStream
) -> StepOutcome:
    """Write the answer into the message word by word (`content`, `contentWords`,
    `contentUpdatedAt`) until it ends, the message is cancelled or the stream is closed."""
    outcome = StepOutcome(message_id)
    written: list[str] = []
    try:
        watch = CancelWatch(message_id, table_name=table_name, client=dynamodb, on_cancel=[stream.close])
        with watch:
            for word in stream:
                watch.raise_if_cancelled()
                written.append(word)
                _write_chunk(dynamodb, table_name, message_id, written)
                outcome.chunk_times.append(time.time())
            watch.raise_if_cancelled()
        outcome.ended = "interrupted" if stream.closed else complete(dynamodb, table_name, message_id)
    except MessageCancelled:
        outcome.ended = "cancelled"
    outcome.words, outcome.ended_at = len(written), time.time()
    return outcome


def _write_chunk(dynamodb: DynamoDBClient, table_name: str, message_id: str, words: list[str]) -> None:
    dynamodb.update_item(
        TableName=table_name,
        Key={"id": {"S": message_id}},
        UpdateExpression="SET content = :content, contentWords = :words, contentUpdatedAt = :at",
        ExpressionAttributeValues={
            ":content": {"S": " ".join(words)},
            ":words": {"N": str(len(words))},
            ":at": {"S": iso_now()},
        },
    )


def complete(dynamodb: DynamoDBClient, table_name: str, message_id: str) -> str:
    """The whole answer is written: the message is completed, unless it left processing first."""
    try:
        dynamodb.update_item(
            TableName=table_name,
            Key={"id": {"S": message_id}},
            UpdateExpression="SET #status = :completed, updatedAt = :now",
            ConditionExpression="#status = :processing",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":completed": {"S": "completed"},
                ":processing": {"S": "processing"},
                ":now": {"S": iso_now()},
            },
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        return "left processing"
    return "completed"
