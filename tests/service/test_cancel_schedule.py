"""The cancel core's schedule: which AWS calls overlap, which wait for which, and the rules that
hold per message while they do (an event accepted before its write, only what this call moved
reported, progress kept when a dependency fails part-way).

Every observed call is recorded with the instants it started and ended, from whichever executor
thread made it. Calls are slowed by sleeps only to make an order unambiguous; the assertions
compare recorded instants ("X started before Y ended"), never durations.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from cancel_service import runtime
from cancel_service.adapters.aws import CALL_CONCURRENCY
from support.client_faults import ClientWithFaults, client_error, install
from support.constants import BUS_NAME, OTHER_USER, PROJECT, TABLE_NAMES
from support.http_api import Answer, post_cancel
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


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> dict[str, ClientWithFaults]:
    return install(monkeypatch)


@pytest.fixture
def bus_without_rules(store: Store) -> Store:
    """The bus accepts events but routes them nowhere: moto matches every event against every
    rule with a slow pattern parser, whose time would swamp the calls' own. What was published
    is read from the recorded PutEvents requests and their per-entry results instead."""
    store.events.remove_targets(Rule="capture", EventBusName=BUS_NAME, Ids=["queue"])
    store.events.delete_rule(Name="capture", EventBusName=BUS_NAME)
    return store


@pytest.fixture
def warm(
    bus_without_rules: Store,
    clients: dict[str, ClientWithFaults],
    mint: Callable[..., str],
    lambda_context: Any,
) -> dict[str, ClientWithFaults]:
    """A container that has already served a request (on another project): its clients exist."""
    post_cancel(lambda_context, {"projectId": "warm-up"}, token=mint())
    assert set(clients) == {"dynamodb", "events"}
    return clients


@pytest.fixture
def timeline(warm: dict[str, ClientWithFaults]) -> Timeline:
    recorded = Timeline(warm)
    recorded.observe_all()
    return recorded


@pytest.fixture
def stop(mint: Callable[..., str], lambda_context: Any) -> Callable[..., Answer]:
    """The owner presses Stop on a project (PROJECT unless told)."""

    def press(project_id: str = PROJECT) -> Answer:
        return post_cancel(lambda_context, {"projectId": project_id}, token=mint())

    return press


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


# --- the per-message rule, and progress kept ------------------------------------------------------


def test_a_batch_rejected_whole_leaves_only_its_messages_processing_and_a_retry_cancels_just_those(
    store: Store, timeline: Timeline, stop: Callable[..., Answer], log_lines: Callable[[], list[Any]]
) -> None:
    ids = seed_messages(store, 30)
    doomed_marker = ids[15]

    def reject_the_batch_holding_the_marker(real: Callable[..., Any], request: dict[str, Any]) -> Any:
        entries = request["Entries"]
        if doomed_marker not in [json.loads(entry["Detail"])["messageId"] for entry in entries]:
            return real(**request)
        failures = [{"ErrorCode": "InternalFailure", "ErrorMessage": "try again"} for _ in entries]
        return {"FailedEntryCount": len(entries), "Entries": failures}

    timeline.observe("events", "put_events", reject_the_batch_holding_the_marker)

    answer = stop()

    batches = timeline.calls("put_events")
    rejected = [call for call in batches if doomed_marker in call.message_ids]
    rejected_ids = rejected[0].message_ids
    accepted = [call for call in batches if doomed_marker not in call.message_ids]
    accepted_ids = [message_id for call in accepted for message_id in call.message_ids]
    assert len(rejected) > 1, "the publisher retries a rejected batch before giving up"
    assert all(call.message_ids == rejected_ids for call in rejected)
    assert len(rejected_ids) == 10
    assert sorted(accepted_ids + rejected_ids) == ids
    assert answer.status == 503
    assert answer.body["error"]["code"] == "unavailable"
    assert answer.headers["Retry-After"]
    assert sorted(written_ids(timeline)) == sorted(accepted_ids)
    assert statuses(store, accepted_ids) == {"cancelled"}
    assert statuses(store, rejected_ids) == {"processing"}
    assert sorted(kept_cancelled_logged(log_lines)) == sorted(accepted_ids)

    retry_starts = timeline.mark()
    timeline.observe("events", "put_events")  # EventBridge recovers; the user presses Stop again
    retry = stop()

    assert retry.status == 200
    assert sorted(retry.body["messageIds"]) == sorted(rejected_ids)
    assert sorted(published_ids(timeline, retry_starts)) == sorted(rejected_ids)
    assert sorted(written_ids(timeline, retry_starts)) == sorted(rejected_ids)
    assert statuses(store, ids) == {"cancelled"}


# --- a project the caller may not touch -----------------------------------------------------------


@pytest.fixture
def idle_executors(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], ThreadPoolExecutor]]:
    """Give the container a new call executor, built as runtime builds its own, that the test can
    wait to go idle: a call still in flight when the answer was ready is then finished, and seen."""
    created: list[ThreadPoolExecutor] = []

    def new_executor() -> ThreadPoolExecutor:
        executor = ThreadPoolExecutor(max_workers=CALL_CONCURRENCY, thread_name_prefix="aws-call")
        created.append(executor)
        monkeypatch.setattr(runtime, "_AWS_CALLS", executor)
        runtime.cancel_service.cache_clear()  # rebuilt on the next request, with this executor
        return executor

    yield new_executor
    for executor in created:
        executor.shutdown(wait=True)


def test_foreign_and_missing_projects_get_the_same_404_and_nothing_is_published_or_written(
    store: Store,
    timeline: Timeline,
    stop: Callable[..., Answer],
    idle_executors: Callable[[], ThreadPoolExecutor],
) -> None:
    store.put_project("foreign-project", owner_id=OTHER_USER)
    foreign = [f"foreign-{number}" for number in range(12)]
    for message_id in foreign:
        store.put_message(message_id, project_id="foreign-project")
    # Messages left behind by a project that no longer exists: the index still has them.
    orphans = [f"orphan-{number}" for number in range(12)]
    for message_id in orphans:
        store.put_message(message_id, project_id="gone-project")

    answers: dict[str, Answer] = {}
    operations: dict[str, list[str]] = {}
    for project_id in ("foreign-project", "gone-project"):
        executor = idle_executors()
        since = timeline.mark()
        answers[project_id] = stop(project_id)
        executor.shutdown(wait=True)  # the first page may still have been in flight: let it land
        operations[project_id] = timeline.operations(since)

    assert {answer.status for answer in answers.values()} == {404}
    assert answers["foreign-project"].body == answers["gone-project"].body
    assert answers["gone-project"].body["error"]["code"] == "project_not_found"
    for project_id, made in operations.items():
        assert made.count("get_item") == 1, project_id
        assert made.count("query") <= 1, project_id
        assert set(made) <= {"get_item", "query"}, project_id
    assert statuses(store, foreign + orphans) == {"processing"}


# --- a page that cannot be read -------------------------------------------------------------------


def test_a_query_page_failing_after_the_first_was_published_keeps_that_page_cancelled_and_a_retry_finishes(
    store: Store, timeline: Timeline, stop: Callable[..., Answer], log_lines: Callable[[], list[Any]]
) -> None:
    ids = seed_paged_messages(store)
    first_page: list[str] = []
    published: set[str] = set()
    first_page_published = threading.Event()
    lock = threading.Lock()

    def publish_and_note(real: Callable[..., Any], request: dict[str, Any]) -> Any:
        response = real(**request)
        entries = zip(request["Entries"], response["Entries"], strict=True)
        with lock:
            published.update(json.loads(e["Detail"])["messageId"] for e, r in entries if r.get("EventId"))
            if first_page and published >= set(first_page):
                first_page_published.set()
        return response

    def first_page_then_failure(real: Callable[..., Any], request: dict[str, Any]) -> Any:
        if "ExclusiveStartKey" not in request:
            response = real(**request)
            with lock:
                first_page.extend(item["id"]["S"] for item in response["Items"])
            return response
        first_page_published.wait(WAIT_LIMIT_SECONDS)
        # What the client raises once botocore's own retries of the page gave up.
        raise client_error("InternalServerError", "Query")

    timeline.observe("events", "put_events", publish_and_note)
    timeline.observe("dynamodb", "query", first_page_then_failure)

    answer = stop()

    rest = sorted(set(ids) - set(first_page))
    assert first_page_published.is_set(), "the second page failed only after the first was published"
    assert rest, "the messages span more than one page"
    assert [call.error is None for call in timeline.calls("query")] == [True, False]
    assert answer.status == 503
    assert answer.body["error"]["code"] == "unavailable"
    assert answer.headers["Retry-After"]
    assert statuses(store, first_page) == {"cancelled"}
    assert statuses(store, rest) == {"processing"}
    assert sorted(written_ids(timeline)) == sorted(first_page)
    assert sorted(kept_cancelled_logged(log_lines)) == sorted(first_page)

    retry_starts = timeline.mark()
    timeline.observe("dynamodb", "query")
    retry = stop()

    assert retry.status == 200
    assert sorted(retry.body["messageIds"]) == rest
    assert sorted(published_ids(timeline, retry_starts)) == rest
    assert statuses(store, ids) == {"cancelled"}


# --- the bound on calls in flight -----------------------------------------------------------------


def test_calls_run_in_parallel_but_never_more_at_once_than_the_container_bound(
    store: Store, warm: dict[str, ClientWithFaults], stop: Callable[..., Answer]
) -> None:
    ids = seed_messages(store, 300)
    timeline = Timeline(warm)
    held = {operation: slowed(0.005) for _, operation in OPERATIONS}
    timeline.observe_all(**held)  # each call is held a little, so that calls overlap

    answer = stop()

    assert answer.status == 200
    assert sorted(answer.body["messageIds"]) == ids
    made = {name for client in warm.values() for name, _ in client.calls}
    assert made <= {operation for _, operation in OPERATIONS}, "every call made was counted"
    assert len(timeline.calls("update_item")) == 300
    assert 1 < timeline.max_in_flight <= CALL_CONCURRENCY


# --- the schedule ---------------------------------------------------------------------------------


@dataclass
class SlowedStop:
    """A Stop over several pages whose calls were slowed to make their order unambiguous:
    the project read is slower than the first page; the first page's PutEvents are slow, and the
    batch holding its last message slowest of all."""

    answer: Answer
    timeline: Timeline
    pages: list[list[str]]
    slow_batch: Call

    def only(self, operation: str) -> Call:
        [call] = self.timeline.calls(operation)
        return call


@pytest.fixture
def slowed_stop(store: Store, timeline: Timeline, stop: Callable[..., Answer]) -> SlowedStop:
    ids = seed_paged_messages(store)

    def first_page() -> list[str]:
        return timeline.pages_read()[0]

    def publish_slowly(real: Callable[..., Any], request: dict[str, Any]) -> Any:
        batch = [json.loads(entry["Detail"])["messageId"] for entry in request["Entries"]]
        if first_page()[-1] in batch:
            time.sleep(1.0)
        elif set(batch) <= set(first_page()):
            time.sleep(0.3)
        return real(**request)

    timeline.observe("dynamodb", "get_item", slowed(0.3))
    timeline.observe("dynamodb", "query", slowed(0.05))
    timeline.observe("events", "put_events", publish_slowly)

    answer = stop()

    assert answer.status == 200
    assert sorted(answer.body["messageIds"]) == ids
    pages = timeline.pages_read()
    assert len(pages) > 1
    assert len(pages[0]) > 10, "the first page has more than one PutEvents batch"
    [slow_batch] = [call for call in timeline.calls("put_events") if pages[0][-1] in call.message_ids]
    return SlowedStop(answer, timeline, pages, slow_batch)


def test_the_project_and_the_first_page_are_read_together(slowed_stop: SlowedStop) -> None:
    project = slowed_stop.only("get_item")
    first_page = slowed_stop.timeline.calls("query")[0]

    assert first_page.started < project.ended
    assert project.started < first_page.ended


def test_nothing_is_published_or_written_before_the_project_answered(slowed_stop: SlowedStop) -> None:
    timeline = slowed_stop.timeline
    project = slowed_stop.only("get_item")
    first_page = timeline.calls("query")[0]
    publishes_and_writes = timeline.calls("put_events") + timeline.calls("update_item")

    assert first_page.ended < project.ended, "a page was ready to publish while ownership was unknown"
    assert all(call.started > project.ended for call in publishes_and_writes)


def test_the_next_page_is_read_while_the_first_page_is_being_published(slowed_stop: SlowedStop) -> None:
    second_page = slowed_stop.timeline.calls("query")[1]
    first_page = set(slowed_stop.pages[0])
    first_page_batches = [
        call for call in slowed_stop.timeline.calls("put_events") if set(call.message_ids) <= first_page
    ]

    assert second_page.started < min(call.ended for call in first_page_batches)


def test_an_early_batch_is_written_before_a_slower_later_batch_answered(slowed_stop: SlowedStop) -> None:
    slow_ids = set(slowed_stop.slow_batch.message_ids)
    early_writes = [
        call
        for call in slowed_stop.timeline.calls("update_item")
        if call.message_ids[0] in slowed_stop.pages[0] and call.message_ids[0] not in slow_ids
    ]

    assert any(write.started < slowed_stop.slow_batch.ended for write in early_writes)


def test_every_write_starts_after_its_own_event_was_accepted(slowed_stop: SlowedStop) -> None:
    accepted_at = {
        message_id: call.ended
        for call in slowed_stop.timeline.calls("put_events")
        for message_id in call.message_ids
    }

    for write in slowed_stop.timeline.calls("update_item"):
        assert write.started > accepted_at[write.message_ids[0]], write.message_ids[0]


# --- the order of the answer ----------------------------------------------------------------------


def test_message_ids_follow_the_index_order_not_the_order_writes_completed(
    store: Store, timeline: Timeline, stop: Callable[..., Answer]
) -> None:
    ids = seed_paged_messages(store)

    def in_the_index_own_order(real: Callable[..., Any], request: dict[str, Any]) -> Any:
        # DynamoDB promises no order among items with equal index keys; here each page comes
        # reversed, so that the order read is not the ids' sorted order.
        response = real(**request)
        return {**response, "Items": list(reversed(response["Items"]))}

    def early_writes_slow(real: Callable[..., Any], request: dict[str, Any]) -> Any:
        if request["Key"]["id"]["S"] in timeline.pages_read()[0][:10]:
            time.sleep(0.3)
        return real(**request)

    timeline.observe("dynamodb", "query", in_the_index_own_order)
    timeline.observe("dynamodb", "update_item", early_writes_slow)

    answer = stop()

    read_order = [message_id for page in timeline.pages_read() for message_id in page]
    completion_order = [
        call.message_ids[0] for call in sorted(timeline.calls("update_item"), key=lambda call: call.ended)
    ]
    assert len(timeline.pages_read()) > 1
    assert sorted(read_order) == ids
    assert read_order != ids, "the index order differs from the ids' sorted order"
    assert completion_order != read_order, "writes completed in another order than read"
    assert answer.status == 200
    assert answer.body["messageIds"] == read_order
