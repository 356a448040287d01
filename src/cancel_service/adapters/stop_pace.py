"""DynamoDB: the bulk lane's StopExecution pace, shared by every instance of the bulk stopper.

One item per lane holds the earliest moment the next call may be made. An instance claims
moments by a conditional write that moves it on: from `max(now, next)`, one interval (`1 / rate`)
per moment claimed; a lost race returns the item as it now is and the instance claims after it.
So calls are at least one interval apart whichever instance makes them: no one-second window
holds more than the rate, a fresh container cannot burst (it knows nothing but what the item
says), and an idle lane saves nothing up (a claim never starts before now). The rate is exact,
fractional included: 2.5 per second is one call every 0.4 s.

An instance told how many calls it is about to make (a batch's stops) claims a moment for each
in one write, then hands them out one per call; a call beyond them (a retry) claims its own. A
moment is handed out only before it passes: one that passed unused (its stop needed no call, or
came too late) is given up, so the lane may run under its rate, never over it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

MICROSECONDS = 1_000_000

# A hair over the interval (0.1 %), so that calls let through one interval apart, each sent a
# moment after its reservation, still fall in distinct windows.
INTERVAL_MARGIN = 1.001

# Claims lost to other instances in a row before the call fails (the queue retries it):
# each loss means another instance got a moment, so the lane is moving meanwhile.
MAX_LOST_RACES = 20


class SharedPace:
    """At most `rate` calls per second in all, across every instance that shares `lane`'s item."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        lane: str,
        rate: float,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError("the rate must be a positive number")
        self._client = client
        self._table_name = table_name
        self._key = {"lane": {"S": lane}}
        self._interval = math.ceil(MICROSECONDS / rate * INTERVAL_MARGIN)
        self._clock = clock
        self._next: int | None = None  # what this instance last saw in the item
        self._held = range(0)  # the moments it claimed and has not handed out
        self._expected = 0  # the calls announced that have no moment yet
        # The stopper's threads reserve one after the other: one conditional write in flight.
        self._lock = threading.Lock()

    def expect(self, calls: int) -> None:
        """The caller is about to make `calls` calls: the next claim takes a moment for each."""
        with self._lock:
            self._expected = calls

    def reserve(self) -> float:
        """The moment (epoch seconds, the `clock`'s) at which the caller may make one call."""
        with self._lock:
            self._held = self._not_passed(self._held)
            if not self._held:
                self._held = self._claim(max(1, self._expected))
            moment, self._held = self._held[0], self._held[1:]
            self._expected = max(0, self._expected - 1)
            return moment / MICROSECONDS

    def _not_passed(self, moments: range) -> range:
        """The moments not yet passed: one handed out late would come less than an interval
        before the next one, which may be another instance's."""
        passed = -((moments.start - round(self._clock() * MICROSECONDS)) // self._interval)  # rounded up
        return moments[max(0, passed) :]

    def _claim(self, count: int) -> range:
        """`count` moments one interval apart, the first at `max(now, next)`, in one write."""
        for _ in range(MAX_LOST_RACES):
            now = round(self._clock() * MICROSECONDS)
            start = now if self._next is None else max(now, self._next)
            end = start + count * self._interval
            if self._write(end):
                self._next = end
                return range(start, end, self._interval)
        raise RuntimeError(f"lost {MAX_LOST_RACES} claims of the stop pace in a row")

    def _write(self, end: int) -> bool:
        values = {":next": {"N": str(end)}}
        if self._next is None:
            condition = "attribute_not_exists(nextCallAt)"
        else:
            condition = "nextCallAt = :seen"
            values[":seen"] = {"N": str(self._next)}
        try:
            self._client.update_item(
                TableName=self._table_name,
                Key=self._key,
                UpdateExpression="SET nextCallAt = :next",
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            seen = error.response.get("Item", {}).get("nextCallAt", {}).get("N")  # type: ignore[attr-defined]
            self._next = int(seen) if seen is not None else None
            return False
        return True
