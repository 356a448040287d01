"""The cancel rules, shared by every entry point (HTTP, bulk, sweeps) and free of HTTP.

1. Only messages still `processing` are touched, read through an index.
2. A cancel event is published first; a message is cancelled only once EventBridge accepted its
   event, so no message is marked cancelled while its agent was never told to stop.
3. The status moves to `cancelled` by a conditional write; a message that finished meanwhile is
   left as it is and not reported.
4. Progress is kept: when a dependency fails part-way, what was cancelled stays cancelled and the
   failure is raised so the caller can retry the rest.

The schedule is as fast as these rules allow: for a user's Stop, the project and the first page
of its processing messages are read together, and nothing is published or written before the
ownership check passed. Then every call that does not wait on another is in flight at once, on
the container's one bounded executor (`Calls`): the next page is read while the current one is
published, all PutEvents batches of a page go out together, and each batch's accepted messages
go to their conditional writes as soon as that batch answers. Rule 2 holds per message; the request as a
whole never waits for its slowest batch before writing. Everything is orchestrated from the
calling thread (the executor's workers only make calls), so the executor cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple, Protocol, TypeVar

from cancel_service.errors import DependencyUnavailable, ProjectNotFound
from cancel_service.models import (
    USER_REQUEST_REASON,
    Caller,
    CancelRequest,
    MessagePage,
    PageKey,
    ProcessingMessage,
    Project,
    PublishedBatch,
    WriteOutcome,
    utc_timestamp,
)
from cancel_service.observability import logger, tracer

T = TypeVar("T")


# --- what the core needs of the world (the adapters, or in-memory stand-ins in unit tests) ------


class Projects(Protocol):
    def get(self, project_id: str) -> Project | None: ...


class Messages(Protocol):
    def processing_in_project_page(self, project_id: str, after: PageKey | None) -> MessagePage: ...

    def cancel_one(self, message: ProcessingMessage, request: CancelRequest) -> WriteOutcome: ...


class CancelEvents(Protocol):
    # The most messages one batch may hold (EventBridge's PutEvents takes 10 entries).
    max_batch: int

    def publish_batch(self, batch: Sequence[ProcessingMessage], request: CancelRequest) -> PublishedBatch: ...


class Calls(Protocol):
    """Where the core's calls run: each started when submitted, the calling thread waiting until
    one of those it waits on completes."""

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]: ...

    def wait_any(self, futures: Collection[Future[Any]]) -> None: ...


class ExecutorCalls:
    """The core's calls on an executor's threads (the container's one bounded pool)."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        return self._executor.submit(fn, *args)

    def wait_any(self, futures: Collection[Future[Any]]) -> None:
        wait(futures, return_when=FIRST_COMPLETED)


class CancelResult(NamedTuple):
    """The messages this request cancelled, and those it found finished meanwhile, in the order
    they were read from the index."""

    cancelled_ids: tuple[str, ...]
    already_finished_ids: tuple[str, ...] = ()

    @property
    def cancelled(self) -> bool:
        return bool(self.cancelled_ids)


class CancelService:
    def __init__(
        self,
        projects: Projects,
        messages: Messages,
        events: CancelEvents,
        calls: Calls,
    ) -> None:
        self._projects = projects
        self._messages = messages
        self._events = events
        self._calls = calls

    @tracer.capture_method
    def cancel_project_for(self, caller: Caller, project_id: str, request_id: str) -> CancelResult:
        """A user's Stop (request `request_id`): every processing message of a project the caller
        may touch."""
        project = self._calls.submit(self._projects.get, project_id)
        first_page = self._calls.submit(self._messages.processing_in_project_page, project_id, None)
        self._calls.wait_any([project])
        found = project.result()
        if found is None or not found.accessible_by(caller):
            raise ProjectNotFound(project_id)
        request = CancelRequest(
            request_id=request_id,
            requested_by=caller.user_id,
            reason=USER_REQUEST_REASON,
            requested_at=utc_timestamp(),
        )
        run = self._run(request)
        run.read_pages(first_page, partial(self._messages.processing_in_project_page, project_id))
        return run.finish()

    @tracer.capture_method
    def cancel(self, messages: Sequence[ProcessingMessage], request: CancelRequest) -> CancelResult:
        """Cancel these messages by the rules above; raise DependencyUnavailable on a partial failure."""
        run = self._run(request)
        run.publish(messages)
        return run.finish()

    def _run(self, request: CancelRequest) -> _RequestInFlight:
        return _RequestInFlight(self._calls, self._messages, self._events, request)


@dataclass
class _RequestInFlight:
    """One cancel request in flight. Its state is touched by the calling thread only: futures
    are collected in `_pending` with what to do once each is done."""

    calls: Calls
    messages: Messages
    events: CancelEvents
    request: CancelRequest
    _pending: dict[Future[Any], Callable[[Future[Any]], None]] = field(default_factory=dict)
    _read: list[ProcessingMessage] = field(default_factory=list)
    _outcomes: dict[str, WriteOutcome] = field(default_factory=dict)
    _rejected: int = 0
    _read_failed: bool = False

    def read_pages(self, first: Future[MessagePage], next_page: Callable[[PageKey], MessagePage]) -> None:
        def on_page(done: Future[Any]) -> None:
            try:
                page: MessagePage = done.result()
            except DependencyUnavailable:
                self._read_failed = True  # what was read so far is still cancelled
                return
            if page.next_key is not None:
                self._then(self.calls.submit(next_page, page.next_key), on_page)
            self.publish(page.messages)

        self._then(first, on_page)

    def publish(self, messages: Sequence[ProcessingMessage]) -> None:
        self._read.extend(messages)
        size = self.events.max_batch
        for start in range(0, len(messages), size):
            batch = messages[start : start + size]
            published = self.calls.submit(self.events.publish_batch, batch, self.request)
            self._then(published, self._write_accepted)

    def _write_accepted(self, done: Future[Any]) -> None:
        batch: PublishedBatch = done.result()
        self._rejected += len(batch.rejected)
        for message in batch.accepted:
            write = self.calls.submit(self.messages.cancel_one, message, self.request)
            self._then(write, partial(self._record, message.id))

    def _record(self, message_id: str, written: Future[Any]) -> None:
        self._outcomes[message_id] = written.result()

    def _then(self, future: Future[Any], callback: Callable[[Future[Any]], None]) -> None:
        self._pending[future] = callback

    def finish(self) -> CancelResult:
        """Wait for every call, reacting to each as it completes; the result, or the failure with
        what was cancelled before it."""
        while self._pending:
            self.calls.wait_any(self._pending)
            for future in [future for future in self._pending if future.done()]:
                self._pending.pop(future)(future)
        cancelled = self._ids_with(WriteOutcome.CANCELLED)
        finished = self._ids_with(WriteOutcome.ALREADY_FINISHED)
        if finished:
            logger.info("messages finished before they could be cancelled", extra={"message_ids": finished})
        failed_writes = any(outcome is WriteOutcome.FAILED for outcome in self._outcomes.values())
        if self._rejected or failed_writes or self._read_failed:
            dependency = "eventbridge" if self._rejected else "dynamodb"
            raise DependencyUnavailable(dependency, cancelled_ids=cancelled, already_finished_ids=finished)
        return CancelResult(cancelled, finished)

    def _ids_with(self, outcome: WriteOutcome) -> tuple[str, ...]:
        return tuple(m.id for m in self._read if self._outcomes.get(m.id) is outcome)
