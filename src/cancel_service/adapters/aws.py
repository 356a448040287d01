"""Shared botocore settings for every AWS client of the service, the bound on calls in flight, and
PutEvents with the retry of refused entries that both EventBridge publishers use."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef, PutEventsResultEntryTypeDef

# The most AWS calls one container has in flight at once (the cancel core's executor): the one
# place this bound is named. Each client's connection pool holds as many connections, so no call
# ever waits for a free one.
CALL_CONCURRENCY = 32

# Standard retry mode backs off on throttles and transient errors; timeouts stay well inside the
# API Gateway integration limit so a slow dependency becomes a 503 rather than a gateway timeout.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4},
    connect_timeout=2,
    read_timeout=5,
    max_pool_connections=CALL_CONCURRENCY,
)

# The stops of one batch in flight at once (a stop queue's BatchSize): all of them.
STOP_CONCURRENCY = 10

# StopExecution has a per-account token bucket shared with every other caller: adaptive mode
# rate-limits the client once it sees throttles, so that a storm of users' Stops is absorbed
# rather than refused. A few attempts are enough: a stop still throttled after them fails its
# queue record alone, and the queue delivers it again. StopExecution answers in milliseconds:
# short timeouts keep what one attempt may take (ATTEMPT_RESERVE_SECONDS) small.
STOP_EXECUTION_CONFIG = CLIENT_CONFIG.merge(
    Config(
        retries={"mode": "adaptive", "total_max_attempts": 4},
        connect_timeout=1,
        read_timeout=2,
        max_pool_connections=STOP_CONCURRENCY,
    )
)


class EntryRetry(NamedTuple):
    """How often an entry EventBridge refused inside a successful PutEvents call (throttled,
    internal failure) is put again, with jittered backoff between attempts. It was not accepted,
    so putting it again cannot make a second event."""

    attempts: int = 3
    base_delay: float = 0.1
    sleep: Callable[[float], None] = time.sleep

    def pause_before(self, attempt: int) -> None:
        if attempt:
            self.sleep(self.base_delay * 2 ** (attempt - 1) * (1 + random.random()))  # noqa: S311


ENTRY_RETRY = EntryRetry()


class PutEventsOutcome(NamedTuple):
    """Which entries (by their index in the request) EventBridge accepted and which it had not
    after every attempt; `call_error` is the call that failed outright (botocore had retried it
    already), which ends the attempts with the entries still pending counted as refused."""

    accepted: tuple[int, ...]
    refused: tuple[int, ...]
    call_error: ClientError | BotoCoreError | None = None
    failed_attempt: int | None = None  # the attempt (0 for the first) whose call failed


def put_events_retrying(
    client: EventBridgeClient,
    entries: Sequence[PutEventsRequestEntryTypeDef],
    retry: EntryRetry,
    on_refused: Callable[[int, PutEventsResultEntryTypeDef, int], None] | None = None,
) -> PutEventsOutcome:
    """Put the entries (at most PutEvents' 10); put those EventBridge refused again, up to
    `retry.attempts` calls in all. `on_refused(index, result, attempt)` hears of each refusal."""
    accepted: list[int] = []
    pending = list(range(len(entries)))
    for attempt in range(retry.attempts):
        retry.pause_before(attempt)
        try:
            response = client.put_events(Entries=[entries[index] for index in pending])
        except (ClientError, BotoCoreError) as error:
            return PutEventsOutcome(tuple(accepted), tuple(pending), error, attempt)
        still_pending = []
        for index, result in zip(pending, response["Entries"], strict=True):
            if result.get("EventId") and not result.get("ErrorCode"):
                accepted.append(index)
            else:
                still_pending.append(index)
                if on_refused is not None:
                    on_refused(index, result, attempt)
        pending = still_pending
        if not pending:
            break
    return PutEventsOutcome(tuple(accepted), tuple(pending))
