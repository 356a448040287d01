"""The cancel core's AWS calls on a timeline: every observed call with the instants it started and
ended, from whichever executor thread made it; calls slowed on purpose; the messages they seed.

Calls are slowed by sleeps only to make an order unambiguous; the tests compare recorded instants
("X started before Y ended"), never durations."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from support.client_faults import ClientWithFaults
from support.constants import PROJECT, TABLE_NAMES
from support.store import Store

# A message this large makes DynamoDB end a Query page after about two dozen of them (1 MB).
LONG_CONTENT = "x" * 40_000
PAGED_MESSAGES = 36
WAIT_LIMIT_SECONDS = 10  # the longest any test waits on another thread; never reached when green


# What an observed call does with the real client's operation and the request: by default, call it.
Behaviour = Callable[[Callable[..., Any], dict[str, Any]], Any]


def passthrough(real: Callable[..., Any], request: dict[str, Any]) -> Any:
    return real(**request)


def slowed(seconds: float, then: Behaviour = passthrough) -> Behaviour:
    def behaviour(real: Callable[..., Any], request: dict[str, Any]) -> Any:
        time.sleep(seconds)
        return then(real, request)

    return behaviour


@dataclass
class Call:
    """One AWS call as the function made it: its request, its outcome and when it ran."""

    operation: str
    request: dict[str, Any]
    started: float
    ended: float = float("inf")  # still in flight
    response: Any = None
    error: Exception | None = None

    @property
    def message_ids(self) -> list[str]:
        """The messages the call is about: published, written, or read (in the order returned)."""
        if self.operation == "put_events":
            return [json.loads(entry["Detail"])["messageId"] for entry in self.request["Entries"]]
        if self.operation == "update_item":
            return [self.request["Key"]["id"]["S"]]
        if self.operation == "query" and self.response is not None:
            return [item["id"]["S"] for item in self.response.get("Items", [])]
        return []


class Timeline:
    """Every observed call with its start and end instants, recorded from any thread, and the
    most calls that were ever in flight at once."""

    def __init__(self, clients: dict[str, ClientWithFaults]) -> None:
        self._clients = clients
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._in_flight = 0
        self.max_in_flight = 0

    def observe(self, service: str, operation: str, behaviour: Behaviour = passthrough) -> None:
        client = self._clients[service]
        real = getattr(client.real, operation)

        def observed(**request: Any) -> Any:
            with self._lock:
                call = Call(operation, request, time.perf_counter())
                self._calls.append(call)
                self._in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self._in_flight)
            try:
                call.response = behaviour(real, request)
            except Exception as error:
                call.error = error
                raise
            finally:
                with self._lock:
                    call.ended = time.perf_counter()
                    self._in_flight -= 1
            return call.response

        client.intercept[operation] = observed

    def observe_all(self, **behaviours: Behaviour) -> None:
        """Observe every operation the cancel makes; `behaviours` by operation name."""
        for service, operation in OPERATIONS:
            self.observe(service, operation, behaviours.get(operation, passthrough))

    def mark(self) -> int:
        """A position in the timeline: `calls(..., since=mark)` sees only what came after it."""
        with self._lock:
            return len(self._calls)

    def calls(self, operation: str, since: int = 0) -> list[Call]:
        """The calls of one operation, in the order they started."""
        with self._lock:
            return [call for call in self._calls[since:] if call.operation == operation]

    def operations(self, since: int = 0) -> list[str]:
        with self._lock:
            return [call.operation for call in self._calls[since:]]

    def pages_read(self, since: int = 0) -> list[list[str]]:
        """The message ids of each Query page that answered, pages in order, items in page order."""
        return [call.message_ids for call in self.calls("query", since) if call.error is None]


OPERATIONS = (
    ("dynamodb", "get_item"),
    ("dynamodb", "query"),
    ("events", "put_events"),
    ("dynamodb", "update_item"),
)


def seed_messages(store: Store, count: int, *, content: str | None = None, prefix: str = "m") -> list[str]:
    """`count` processing messages of PROJECT, `content` making each as large as a long prompt."""
    store.put_project()
    ids = [f"{prefix}{number:03d}" for number in range(count)]
    for message_id in ids:
        item = {
            "id": {"S": message_id},
            "projectId": {"S": PROJECT},
            "conversationId": {"S": "conv_1"},
            "status": {"S": "processing"},
            "createdAt": {"S": "2026-11-24T11:59:00.000Z"},
            "updatedAt": {"S": "2026-11-24T12:00:00.000Z"},
        }
        if content is not None:
            item["content"] = {"S": content}
        store.dynamodb.put_item(TableName=TABLE_NAMES["MessagesTable"], Item=item)
    return ids


def seed_paged_messages(store: Store) -> list[str]:
    """Enough long messages for the index Query to answer in several pages."""
    return seed_messages(store, PAGED_MESSAGES, content=LONG_CONTENT)


def statuses(store: Store, message_ids: list[str]) -> set[str]:
    return {store.status(message_id) for message_id in message_ids}


def written_ids(timeline: Timeline, since: int = 0) -> list[str]:
    return [call.message_ids[0] for call in timeline.calls("update_item", since)]


def published_ids(timeline: Timeline, since: int = 0) -> list[str]:
    return [message_id for call in timeline.calls("put_events", since) for message_id in call.message_ids]


def kept_cancelled_logged(log_lines: Callable[[], list[dict[str, Any]]]) -> list[str]:
    [failure] = [line for line in log_lines() if line.get("message") == "dependency unavailable"]
    return list(failure["kept_cancelled"])
