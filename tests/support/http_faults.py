"""Faults at the HTTP layer of the AWS clients, below botocore's retry handler.

moto answers in-process through one `before-send` handler (`botocore_stubber`); a fault plan
wraps its `process_request`, so every attempt botocore sends passes through the plan and the
clients' real retry configuration (standard mode, adaptive for Step Functions) decides what is
retried. A fault answers the way AWS fails: a throttle or a 5xx in the service's JSON error
shape, a read or connect timeout, a write that applied but whose answer never arrived, a
PutEvents batch in which some entries failed, an access denial.

Calls are named by operation and what tells the calls of one function apart: `GetItem`,
`Query byProjectAndStatus`, `PutEvents app.messages`, `UpdateItem`, `UpdateItem BulkStateTable`,
`StopExecution`, ...
"""

from __future__ import annotations

import json
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import Enum
from types import SimpleNamespace
from typing import Any

import botocore.endpoint
import pytest
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError
from botocore.retries import bucket
from moto.core.models import botocore_stubber

from support.constants import TABLE_NAMES

Answer = tuple[int, dict[str, str], str | bytes]
_NAMED_TABLES = {TABLE_NAMES["BulkStateTable"]: "BulkStateTable"}


class Kind(Enum):
    THROTTLE = "throttle"
    SERVER_ERROR = "5xx"
    READ_TIMEOUT = "read-timeout"
    CONNECT_TIMEOUT = "connect-timeout"
    # The call reached the service and applied; its answer was lost on the way back.
    LOST_RESPONSE_TIMEOUT = "lost-response-timeout"
    LOST_RESPONSE_5XX = "lost-response-5xx"
    # PutEvents: the call succeeds, every other entry fails (and was never put on the bus).
    PARTIAL_BATCH = "partial-batch"
    ACCESS_DENIED = "access-denied"


# Per service: (JSON content type, throttle error code, server error code).
_SERVICE_ERRORS = {
    "DynamoDB_20120810": (
        "application/x-amz-json-1.0",
        "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "com.amazonaws.dynamodb.v20120810#InternalServerError",
    ),
    "AWSEvents": ("application/x-amz-json-1.1", "ThrottlingException", "InternalException"),
    "AWSStepFunctions": ("application/x-amz-json-1.0", "ThrottlingException", "InternalServerError"),
}


def _error(service: str, status: int, code: str, message: str) -> Answer:
    content_type = _SERVICE_ERRORS[service][0]
    body = json.dumps({"__type": code, "message": message})
    return status, {"Content-Type": content_type, "x-amzn-ErrorType": code.split("#")[-1]}, body


@dataclass
class Fault:
    """One fault on one call. `after`: that many matching attempts pass first; `attempts`: how
    many attempts fail after those (None: every one, a persistent fault). With `per_item`, the
    attempts are counted per DynamoDB item, so e.g. every write loses its first answer."""

    call: str
    kind: Kind
    attempts: int | None = None
    after: int = 0
    per_item: bool = False
    seen: Counter[str] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)

    def fires(self, item: str) -> bool:
        key = item if self.per_item else ""
        self.seen[key] += 1
        if self.seen[key] <= self.after:
            return False
        if self.attempts is not None and self.injected[key] >= self.attempts:
            return False
        self.injected[key] += 1
        return True

    @property
    def label(self) -> str:
        if self.attempts is None:
            timing = "persistent"
        else:
            timing = f"first {self.attempts}" + (" per item" if self.per_item else "")
        if self.after:
            timing += f" after {self.after} ok"
        return f"{self.call} {self.kind.value} {timing}"


@dataclass(frozen=True)
class PublishedEntry:
    """An entry EventBridge accepted (it is on the bus), whatever the client learnt of it."""

    source: str
    detail_type: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class _Request:
    service: str
    operation: str
    call: str
    item: str
    body: dict[str, Any]


def _parse(request: Any) -> _Request | None:
    target = request.headers.get("X-Amz-Target")
    if not target:
        return None
    if isinstance(target, bytes):
        target = target.decode()
    service, operation = target.split(".", 1)
    raw = request.body or b"{}"
    if hasattr(raw, "read"):
        raise TypeError("a streamed request body cannot be inspected")
    body = json.loads(raw)
    call = operation
    if body.get("TableName") in _NAMED_TABLES:  # the bulk's own state, apart from the data's calls
        call = f"{operation} {_NAMED_TABLES[body['TableName']]}"
    elif operation == "Query":
        call = f"Query {body.get('IndexName', body.get('TableName'))}"
    elif operation == "PutEvents":
        call = f"PutEvents {body['Entries'][0]['Source']}"
    item = json.dumps(body.get("Key", {}), sort_keys=True)
    return _Request(service, operation, call, item, body)


class FaultPlan:
    """The faults in force, and a record of what really happened at the service."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.armed = False
        # Serializes calls into moto: DynamoDB's single-item conditional writes are atomic, moto's
        # are not under threads (read, check and write are separate steps); holding this lock
        # while moto answers stands for the atomicity the real service gives.
        self._lock = threading.Lock()
        self.published: list[PublishedEntry] = []
        self.attempts: Counter[str] = Counter()
        self.backoff_skipped_s = 0.0

    @contextmanager
    def arm(self, *faults: Fault) -> Iterator[None]:
        self.faults = list(faults)
        self.armed = True
        try:
            yield
        finally:
            self.armed = False
            self.faults = []

    def published_by(self, source: str) -> list[PublishedEntry]:
        with self._lock:
            return [entry for entry in self.published if entry.source == source]

    def process(self, real: Any, request: Any) -> Answer | None:
        parsed = _parse(request)
        if parsed is None:
            with self._lock:
                answer: Answer | None = real(request)
                return answer
        with self._lock:
            self.attempts[parsed.call] += 1
            fault = next(
                (f for f in self.faults if self.armed and f.call == parsed.call and f.fires(parsed.item)),
                None,
            )
            if fault is None:
                return self._through(real, request, parsed)
            return self._inject(fault, real, request, parsed)

    def _through(self, real: Any, request: Any, parsed: _Request) -> Answer:
        answer: Answer = real(request)
        if parsed.operation == "PutEvents":
            self._record(parsed.body["Entries"], answer)
        return answer

    def _record(self, entries: list[dict[str, Any]], answer: Answer) -> None:
        status, _, body = answer
        if status != 200:
            return
        results = json.loads(body)["Entries"]
        for entry, result in zip(entries, results, strict=True):
            if result.get("EventId") and not result.get("ErrorCode"):
                self.published.append(
                    PublishedEntry(entry["Source"], entry["DetailType"], json.loads(entry["Detail"]))
                )

    def _inject(self, fault: Fault, real: Any, request: Any, parsed: _Request) -> Answer:
        service = parsed.service
        if fault.kind is Kind.THROTTLE:
            return _error(service, 400, _SERVICE_ERRORS[service][1], "Rate exceeded")
        if fault.kind is Kind.SERVER_ERROR:
            return _error(service, 500, _SERVICE_ERRORS[service][2], "Internal error")
        if fault.kind is Kind.ACCESS_DENIED:
            return _error(service, 400, "AccessDeniedException", "not authorized to perform this action")
        if fault.kind is Kind.CONNECT_TIMEOUT:
            raise ConnectTimeoutError(endpoint_url=request.url, error="connect timed out")
        if fault.kind is Kind.READ_TIMEOUT:
            raise ReadTimeoutError(endpoint_url=request.url, error="read timed out")
        if fault.kind is Kind.PARTIAL_BATCH:
            return self._partial_batch(real, request, parsed)
        self._through(real, request, parsed)  # applied at the service...
        if fault.kind is Kind.LOST_RESPONSE_TIMEOUT:  # ...and its answer lost
            raise ReadTimeoutError(endpoint_url=request.url, error="read timed out")
        return _error(service, 500, _SERVICE_ERRORS[service][2], "Internal error")

    def _partial_batch(self, real: Any, request: Any, parsed: _Request) -> Answer:
        """Every other entry fails (a lone entry fails); only the others are put on the bus."""
        if parsed.operation != "PutEvents":
            raise ValueError(f"a partial batch is a PutEvents fault, not {parsed.call}")
        entries = parsed.body["Entries"]
        doomed = [index % 2 == 1 or len(entries) == 1 for index in range(len(entries))]
        kept = [entry for entry, fails in zip(entries, doomed, strict=True) if not fails]
        if not kept:
            failure = {"ErrorCode": "InternalFailure", "ErrorMessage": "internal failure"}
            body = json.dumps({"FailedEntryCount": len(entries), "Entries": [failure] * len(entries)})
            return 200, {"Content-Type": _SERVICE_ERRORS[parsed.service][0]}, body
        request.body = json.dumps({**parsed.body, "Entries": kept}).encode()
        status, headers, answer = self._through(real, request, replace(parsed, body=json.loads(request.body)))
        if status != 200:
            return status, headers, answer
        accepted = iter(json.loads(answer)["Entries"])
        failure = {"ErrorCode": "InternalFailure", "ErrorMessage": "internal failure"}
        results = [failure if fails else next(accepted) for fails in doomed]
        failed = sum(1 for result in results if result.get("ErrorCode"))
        return status, headers, json.dumps({"FailedEntryCount": failed, "Entries": results})


class _GrantingTokenBucket(bucket.TokenBucket):
    """Adaptive mode's client-side rate limiter, granting at once what it would have waited for."""

    # botocore's own private members, which its type stubs leave out.
    _current_capacity: float
    _refill: Callable[[], None]

    # botocore passes `block` by name; granting at once, this bucket never blocks.
    def _acquire(self, amount: float, block: bool) -> bool:  # noqa: ARG002
        self._refill()
        if amount > self._current_capacity:
            self._current_capacity = amount
        self._current_capacity -= amount
        return True


def install(monkeypatch: pytest.MonkeyPatch) -> FaultPlan:
    """Route every moto call through a new plan; botocore's backoff waits are counted, not slept."""
    plan = FaultPlan()
    real = botocore_stubber.process_request
    monkeypatch.setattr(botocore_stubber, "process_request", lambda request: plan.process(real, request))

    def skip_backoff(seconds: float) -> None:
        plan.backoff_skipped_s += seconds

    # botocore.endpoint sleeps between attempts through its module's `time`; only that sleep is
    # replaced. Adaptive mode's token bucket is built per client at creation, from this module.
    monkeypatch.setattr(botocore.endpoint, "time", SimpleNamespace(sleep=skip_backoff))
    monkeypatch.setattr(bucket, "TokenBucket", _GrantingTokenBucket)
    return plan


def by_request_id(entries: list[PublishedEntry]) -> dict[str, Counter[str]]:
    """Cancel events on the bus: for each request id, how many events per message id."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for entry in entries:
        counts[entry.detail["requestId"]][entry.detail["messageId"]] += 1
    return counts
