"""In-memory stand-ins for what the cancel core and the execution outcomes need of the world (the
Protocols of core/cancel.py and core/agent_outcomes.py), and a deterministic executor: calls complete one
at a time, in the order a test chooses, on the test's own thread.

The stand-ins keep the adapters' rules that the core relies on: only `processing` messages are
read, in pages, in the table's order; a cancel write is conditional (a message that moved on is
left as it is, one this request already cancelled counts as cancelled); failures are planned
per message or per page."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from cancel_service.errors import DependencyUnavailable
from cancel_service.models import (
    CANCELLED,
    FAILED,
    PROCESSING,
    CancelRequest,
    ExecutionMessage,
    MessagePage,
    PageKey,
    ProcessingMessage,
    Project,
    PublishedBatch,
    WriteOutcome,
)
from support.constants import PROJECT

T = TypeVar("T")


@dataclass
class StoredMessage:
    message: ProcessingMessage
    status: str = PROCESSING
    fields: dict[str, str] = field(default_factory=dict)


class InMemoryProjects:
    def __init__(self, *projects: Project) -> None:
        self.projects = {project.id: project for project in projects}
        self.unavailable = False

    def get(self, project_id: str) -> Project | None:
        if self.unavailable:
            raise DependencyUnavailable("dynamodb")
        return self.projects.get(project_id)


class InMemoryMessages:
    """The messages table: pages of `page_size` processing messages of a project, in the order
    the messages were added (the index's own order)."""

    def __init__(self, page_size: int = 25) -> None:
        self.page_size = page_size
        self.stored: dict[str, StoredMessage] = {}
        self.failing_writes: set[str] = set()
        self.failing_pages: set[int] = set()  # 0: the first page
        self.pages_read = 0

    def add(self, count: int, *, project_id: str = PROJECT, prefix: str = "m") -> list[str]:
        ids = [f"{prefix}{len(self.stored) + number:03d}" for number in range(count)]
        for message_id in ids:
            message = ProcessingMessage(message_id, project_id, "conv_1", f"arn:execution:{message_id}")
            self.stored[message_id] = StoredMessage(message)
        return ids

    def status(self, message_id: str) -> str:
        return self.stored[message_id].status

    def processing_in_project_page(self, project_id: str, after: PageKey | None) -> MessagePage:
        page_number = self.pages_read
        self.pages_read += 1
        if page_number in self.failing_pages:
            raise DependencyUnavailable("dynamodb")
        entries = list(self.stored.values())
        if after is not None:  # a position in the index: the item there may have left it since
            entries = entries[[entry.message.id for entry in entries].index(after["id"]["S"]) + 1 :]
        matching = [
            entry.message
            for entry in entries
            if entry.message.project_id == project_id and entry.status == PROCESSING
        ]
        page = tuple(matching[: self.page_size])
        more = len(matching) > self.page_size
        return MessagePage(page, {"id": {"S": page[-1].id}} if more else None)

    def cancel_one(self, message: ProcessingMessage, request: CancelRequest) -> WriteOutcome:
        if message.id in self.failing_writes:
            return WriteOutcome.FAILED
        entry = self.stored[message.id]
        if entry.status == PROCESSING:
            entry.status = CANCELLED
            entry.fields.update(cancelledAt=request.requested_at, cancelRequestId=request.request_id)
            return WriteOutcome.CANCELLED
        if entry.status == CANCELLED and entry.fields.get("cancelRequestId") == request.request_id:
            return WriteOutcome.CANCELLED
        return WriteOutcome.ALREADY_FINISHED

    def of_execution(self, execution_arn: str) -> list[ExecutionMessage]:
        return [
            ExecutionMessage(entry.message, entry.status)
            for entry in self.stored.values()
            if entry.message.execution_arn == execution_arn
        ]

    def mark_failed(self, message_id: str, reason: str, at: str) -> bool:
        entry = self.stored[message_id]
        if entry.status != PROCESSING:
            return False
        entry.status = FAILED
        entry.fields.update(failedAt=at, failureReason=reason)
        return True

    def mark_agent_stopped(self, message_id: str, at: str) -> str | None:
        entry = self.stored[message_id]
        if entry.status != CANCELLED or "agentStoppedAt" in entry.fields:
            return None
        entry.fields["agentStoppedAt"] = at
        return entry.fields["cancelledAt"]


class RecordingEvents:
    """EventBridge: every accepted event recorded as (message id, request); the messages in
    `rejecting` refused (after the publisher's retries)."""

    max_batch = 10  # as EventBridge's

    def __init__(self) -> None:
        self.published: list[tuple[str, CancelRequest]] = []
        self.rejecting: set[str] = set()

    def publish_batch(self, batch: Sequence[ProcessingMessage], request: CancelRequest) -> PublishedBatch:
        accepted = tuple(message for message in batch if message.id not in self.rejecting)
        rejected = tuple(message for message in batch if message.id in self.rejecting)
        self.published.extend((message.id, request) for message in accepted)
        return PublishedBatch(accepted, rejected)

    def published_ids(self) -> list[str]:
        return [message_id for message_id, _ in self.published]


# --- the deterministic executor ----------------------------------------------------------------------


@dataclass(eq=False)
class Call:
    """One call the core submitted: the stand-in's method name and its arguments."""

    name: str
    args: tuple[Any, ...]
    run: Callable[[], Any]
    future: Future[Any]

    @property
    def message_ids(self) -> list[str]:
        """The messages the call is about: published, written, or read (once the page answered)."""
        if self.name == "publish_batch":
            return [message.id for message in self.args[0]]
        if self.name == "cancel_one":
            return [self.args[0].id]
        if self.name == "processing_in_project_page" and self.future.done() and not self.future.exception():
            return [message.id for message in self.future.result().messages]
        return []


Chooser = Callable[[list[Call]], Call]


def in_submission_order(in_flight: list[Call]) -> Call:
    return in_flight[0]


def slowest_last(slowness: Callable[[Call], int]) -> Chooser:
    """Complete first the call in flight that `slowness` ranks lowest (the first submitted among
    equals), as if each call took as long as its rank says."""

    def choose(in_flight: list[Call]) -> Call:
        return min(in_flight, key=slowness)  # min keeps the first of equal ranks

    return choose


class ScriptedCalls:
    """The `Calls` of cancel.py, deterministic: a submitted call runs only when the core waits and
    the test's chooser picks it among those in flight. `log` holds ("start" | "end", call) in the
    order it happened."""

    def __init__(self, choose: Chooser = in_submission_order) -> None:
        self.choose = choose
        self.in_flight: list[Call] = []
        self.log: list[tuple[str, Call]] = []

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        future: Future[T] = Future()
        # A method with its first arguments bound (the next page of one project) is named as the method.
        name, bound = (fn.func.__name__, fn.args) if isinstance(fn, partial) else (fn.__name__, ())
        call = Call(name, (*bound, *args), lambda: fn(*args), future)
        self.in_flight.append(call)
        self.log.append(("start", call))
        return future

    def wait_any(self, futures: Collection[Future[Any]]) -> None:
        while not any(future.done() for future in futures):
            assert self.in_flight, "the core waits on calls it never submitted"
            call = self.choose(list(self.in_flight))
            self.in_flight.remove(call)
            try:
                call.future.set_result(call.run())
            except Exception as error:  # the core sees it as a real executor would show it
                call.future.set_exception(error)
            self.log.append(("end", call))

    # --- reading the log ---

    def calls(self, name: str) -> list[Call]:
        """The calls of one method, in the order they started."""
        return [call for kind, call in self.log if kind == "start" and call.name == name]

    def started(self, call: Call) -> int:
        return self.log.index(("start", call))

    def ended(self, call: Call) -> int:
        return self.log.index(("end", call))
