"""The cancel core's rules per message while its calls overlap: an event accepted before its write,
only what this call moved reported, progress kept when a dependency fails part-way, nothing done
for a project the caller may not touch, and never more calls in flight than the container's bound."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from cancel_service import runtime
from cancel_service.adapters.aws import CALL_CONCURRENCY
from support.cancel_timeline import (
    OPERATIONS,
    WAIT_LIMIT_SECONDS,
    Timeline,
    kept_cancelled_logged,
    published_ids,
    seed_messages,
    seed_paged_messages,
    slowed,
    statuses,
    written_ids,
)
from support.client_faults import ClientWithFaults, client_error
from support.constants import OTHER_USER
from support.http_api import Answer
from support.store import Store


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
