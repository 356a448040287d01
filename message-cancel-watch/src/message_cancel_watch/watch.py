"""Watch one message while a step works on it; tell the step to stop once it is cancelled.

One read (GetItem, `status` only) per interval. The message counts as cancelled exactly when its
`status` is `cancelled`: `completed` and `failed` are final too but are not a cancel, so the
watch stops reading and never reports them. A read that fails (throttled, a 5xx, a timeout,
access denied) is logged and retried with a growing delay; it is never taken as a cancel.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger("message_cancel_watch")

# One read a second, strongly consistent: the cancel is seen at most one interval plus one read
# after it was written, and it costs what an eventually consistent read every 0.5 s costs.
DEFAULT_INTERVAL = 1.0
DEFAULT_CONSISTENT_READ = True
# What StatusReader.check returns when the message finished without a cancel: no more reads.
NEVER = float("inf")
# A failing read waits interval x 2, x 4 ... up to this before the next one.
MAX_BACKOFF = 8.0
# A read that hangs would hold the cancel back: short timeouts, botocore's standard retries.
CLIENT_CONFIG = Config(
    connect_timeout=1, read_timeout=2, retries={"mode": "standard", "total_max_attempts": 2}
)

CANCELLED = "cancelled"
FINISHED = frozenset({"completed", "failed"})

Callback = Callable[[], object]


class MessageCancelled(Exception):
    """Raised in the step when its message was cancelled."""

    def __init__(self, message_id: str) -> None:
        super().__init__(f"message {message_id} was cancelled")
        self.message_id = message_id


class StatusReader:
    """Reads one message's status and decides what it means; no threads, no clock."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        message_id: str,
        *,
        interval: float,
        consistent_read: bool,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.message_id, self.interval = message_id, interval
        self._client, self._table_name, self._consistent_read = client, table_name, consistent_read
        self._failures = 0

    def check(self) -> float | None:
        """Read once. None when the message is cancelled; NEVER when it finished otherwise (no
        cancel can come any more); else the seconds to wait before the next read."""
        try:
            item = self._client.get_item(
                TableName=self._table_name,
                Key={"id": {"S": self.message_id}},
                ProjectionExpression="#status",
                ExpressionAttributeNames={"#status": "status"},
                ConsistentRead=self._consistent_read,
            ).get("Item")
        except (ClientError, BotoCoreError) as error:
            self._failures += 1
            delay = min(self.interval * 2.0**self._failures, MAX_BACKOFF)
            logger.warning(
                "reading message %s failed (%s, %d in a row); next read in %.1f s",
                self.message_id,
                _describe(error),
                self._failures,
                delay,
            )
            return delay
        if self._failures:
            logger.info("reading message %s works again after %d failures", self.message_id, self._failures)
            self._failures = 0
        status = item.get("status", {}).get("S") if item else None
        if status == CANCELLED:
            return None
        if status in FINISHED:
            logger.info(
                "message %s is %s: no cancel can come, the watch stops reading", self.message_id, status
            )
            return NEVER
        return self.interval


_default_client_lock = threading.Lock()


@functools.cache
def _make_default_client() -> DynamoDBClient:
    return boto3.client("dynamodb", config=CLIENT_CONFIG)


def default_client() -> DynamoDBClient:
    """The process's one DynamoDB client for watches given none (a Lambda container reuses it)."""
    with _default_client_lock:  # boto3's default session must not build two clients at once
        return _make_default_client()


class _Watch:
    """What the sync and asyncio watches share: the reader, the flag and the callbacks."""

    def __init__(
        self,
        message_id: str,
        *,
        table_name: str,
        client: DynamoDBClient | None = None,
        interval: float = DEFAULT_INTERVAL,
        consistent_read: bool = DEFAULT_CONSISTENT_READ,
        on_cancel: Iterable[Callback] = (),
    ) -> None:
        """Watch message `message_id` of table `table_name`: a read every `interval` seconds,
        strongly consistent unless `consistent_read` is False, with `client` (by default one
        with short timeouts, from the standard AWS environment, made once per process);
        `on_cancel` run once."""
        client = client if client is not None else default_client()
        self._reader = StatusReader(
            client, table_name, message_id, interval=interval, consistent_read=consistent_read
        )
        self.message_id = message_id
        self._lock = threading.Lock()
        self._cancelled = threading.Event()
        self._callbacks = list(on_cancel)
        self._running_callbacks = False

    @property
    def cancelled(self) -> bool:
        """Whether the message's cancel was seen."""
        return self._cancelled.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise MessageCancelled once the cancel was seen."""
        if self._cancelled.is_set():
            raise MessageCancelled(self.message_id)

    def on_cancel(self, callback: Callback) -> None:
        """Run `callback` once when the cancel is seen (at once if it already was, after the
        callbacks given before it)."""
        with self._lock:
            if not self._cancelled.is_set() or self._running_callbacks:
                self._callbacks.append(callback)
                return
        _run(callback, self.message_id)

    def _seen_cancel(self) -> None:
        """Set the flag, then run every callback once, in order (each failure logged, the others
        still run). The flag comes first: a step that a callback unblocks finds it set."""
        with self._lock:
            self._cancelled.set()
            self._running_callbacks = True
        logger.info("message %s was cancelled: stopping the step", self.message_id)
        while True:
            with self._lock:
                if not self._callbacks:
                    self._running_callbacks = False
                    return
                callback = self._callbacks.pop(0)
            _run(callback, self.message_id)


class CancelWatch(_Watch):
    """A context manager that watches a message from a thread of its own while the block runs.

    with CancelWatch(message_id, table_name=table, on_cancel=[stream.close]) as watch:
        for chunk in stream:
            watch.raise_if_cancelled()
            ...

    The thread is joined when the block ends: nothing of the watch outlives it."""

    _thread: threading.Thread | None = None

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds, waking when the cancel is seen; whether it was."""
        return self._cancelled.wait(timeout)

    def __enter__(self) -> CancelWatch:
        if self._thread is not None:
            raise RuntimeError("a CancelWatch is entered once")
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"cancel-watch-{self.message_id}", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        delay = 0.0
        while not self._stopping.wait(delay):
            next_read = self._reader.check()
            if next_read is None:
                self._seen_cancel()
                return
            if next_read == NEVER:
                return
            delay = next_read


class AsyncCancelWatch(_Watch):
    """The asyncio form: cancels the task running the block when the message is cancelled, and
    raises MessageCancelled from the block (as asyncio.timeout raises TimeoutError).

    async with AsyncCancelWatch(message_id, table_name=table):
        await stream_answer()

    Reads run on a thread of the watch's own (boto3 blocks); the watch's task and thread are
    ended and awaited when the block ends."""

    _stopping: asyncio.Event | None = None
    _task: asyncio.Task[Any] | None = None
    _watcher: asyncio.Task[None] | None = None
    _executor: ThreadPoolExecutor | None = None
    _cancelling = 0

    async def __aenter__(self) -> AsyncCancelWatch:
        if self._task is not None:
            raise RuntimeError("an AsyncCancelWatch is entered once")
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("AsyncCancelWatch must be used inside a task")
        self._task, self._cancelling = task, task.cancelling()
        self._stopping = asyncio.Event()
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"cancel-watch-{self.message_id}"
        )
        self._watcher = asyncio.get_running_loop().create_task(
            self._run(), name=f"cancel-watch-{self.message_id}"
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._stopping is not None
        assert self._watcher is not None
        assert self._task is not None
        assert self._executor is not None
        self._stopping.set()
        try:
            # Lets a read in flight finish (bounded by the client's timeouts) rather than
            # leaving it running on its thread.
            await asyncio.shield(self._watcher)
        except asyncio.CancelledError:
            self._watcher.cancel()
            self._executor.shutdown(wait=False)
            raise
        # Its one thread is idle now: joining it takes no time and leaves no thread behind.
        self._executor.shutdown(wait=True)
        if (
            self.cancelled
            and self._task.uncancel() <= self._cancelling
            and exc_type is asyncio.CancelledError
        ):
            raise MessageCancelled(self.message_id) from exc

    async def _run(self) -> None:
        assert self._stopping is not None
        assert self._task is not None
        loop = asyncio.get_running_loop()
        delay = 0.0
        while not await _wait(self._stopping, delay):
            next_read = await loop.run_in_executor(self._executor, self._reader.check)
            if next_read is None:
                self._seen_cancel()
                self._task.cancel(f"message {self.message_id} was cancelled")
                return
            if next_read == NEVER:
                return
            delay = next_read


async def _wait(event: asyncio.Event, timeout: float) -> bool:
    """Whether `event` was set within `timeout` seconds (at once for 0)."""
    if event.is_set():
        return True
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return False
    return True


def _run(callback: Callback, message_id: str) -> None:
    try:
        callback()
    except Exception:
        logger.exception("a cancel callback of message %s failed", message_id)


def _describe(error: Exception) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", "ClientError"))
    return type(error).__name__
