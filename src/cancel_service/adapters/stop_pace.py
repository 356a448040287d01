"""DynamoDB: the bulk lane's StopExecution pace, shared by every instance of the bulk stopper.

One item per lane holds the earliest moment the next call may be made. An instance reserves a
moment by a conditional write that moves it one interval on (`max(now, next)` for the caller,
`+ 1 / rate` for the next one); a lost race returns the item as it now is and the instance
reserves after it. So calls are at least one interval apart whichever instance makes them: no
one-second window holds more than the rate, a fresh container cannot burst (it knows nothing
but what the item says), and an idle lane saves nothing up (a reservation never starts before
now). The rate is exact, fractional included: 2.5 per second is one call every 0.4 s.
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

# Reservations lost to other instances in a row before the call fails (the queue retries it):
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
        # The stopper's threads reserve one after the other: one conditional write in flight.
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """The moment (epoch seconds, the `clock`'s) at which the caller may make one call."""
        with self._lock:
            for _ in range(MAX_LOST_RACES):
                now = round(self._clock() * MICROSECONDS)
                start = now if self._next is None else max(now, self._next)
                if self._claim(start):
                    self._next = start + self._interval
                    return start / MICROSECONDS
            raise RuntimeError(f"lost {MAX_LOST_RACES} reservations of the stop pace in a row")

    def _claim(self, start: int) -> bool:
        values = {":next": {"N": str(start + self._interval)}}
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
