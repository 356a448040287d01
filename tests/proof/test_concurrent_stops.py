"""Many Stops of one project at the same moment, while the agent completes messages.

Each Stop is a thread with its own cancel service and clients (its own Lambda container) and its
own request id; the agent moves messages processing -> completed by the local stack agent's own
conditional write. Whatever the interleaving: every message ends cancelled or completed; a
cancelled message is listed by exactly one Stop, the one whose request id it carries; a completed
message is listed by none; nothing raises. Events per cancelled message are measured: concurrent
Stops may each publish one before one of them wins the write (the contract allows it); one request
never publishes two for a message.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from statistics import mean
from typing import Any

import boto3
import pytest

from cancel_service import runtime
from cancel_service.core.cancel import CancelService
from cancel_service.models import Caller
from devstack.agent.answer import complete
from support.constants import OWNER, PROJECT, TABLE_NAMES
from support.figures import record
from support.http_faults import FaultPlan, by_request_id, install
from support.store import Store

pytestmark = pytest.mark.proof
STOPS = 16
# Every call into moto is serialized (see aws_faults): a round is ~400 calls one after another,
# with 16 x 8 writer threads contending for the interpreter: ~15 s a round on two busy cores.
ROUNDS = 4
MESSAGES_PER_ROUND = 20
ROUND_TIMEOUT_S = 180.0
TOTAL_TIMEOUT_S = 900.0
CALLER = Caller(user_id=OWNER, session_id="sess_2concurrent")
TITLE = "concurrent Stops of one project, the agent completing messages meanwhile"


def _container_services(count: int) -> list[CancelService]:
    """The cancel service as each of `count` containers builds it: its own clients."""
    services = []
    for _ in range(count):
        for cached in (runtime._dynamodb, runtime._events):
            cached.cache_clear()
        services.append(runtime.cancel_service.__wrapped__())
    return services


def _seed(store: Store, round_number: int) -> list[str]:
    ids = [f"r{round_number:02}-m{n:02}" for n in range(MESSAGES_PER_ROUND)]
    requests = [
        {
            "PutRequest": {
                "Item": {
                    "id": {"S": message_id},
                    "projectId": {"S": PROJECT},
                    "conversationId": {"S": f"conv_{n % 4}"},
                    "status": {"S": "processing"},
                    "createdAt": {"S": "2026-11-24T11:59:00.000Z"},
                    "updatedAt": {"S": "2026-11-24T12:00:00.000Z"},
                }
            }
        }
        for n, message_id in enumerate(ids)
    ]
    for start in range(0, len(requests), 25):
        store.dynamodb.batch_write_item(
            RequestItems={TABLE_NAMES["MessagesTable"]: requests[start : start + 25]}
        )
    return ids


def _run_round(
    services: list[CancelService], agent: Any, ids: list[str], round_number: int
) -> tuple[dict[str, tuple[str, ...]], list[BaseException]]:
    """All Stops and the agent start together; returns what each Stop listed, and any error."""
    start = threading.Barrier(len(services) + 1)
    listed: dict[str, tuple[str, ...]] = {}
    errors: list[BaseException] = []

    def stop(service: CancelService, request_id: str) -> None:
        try:
            start.wait()
            listed[request_id] = service.cancel_project_for(CALLER, PROJECT, request_id).cancelled_ids
        except BaseException as error:
            errors.append(error)

    def agent_works() -> None:
        try:
            start.wait()
            for message_id in random.sample(ids, len(ids)):
                complete(agent, TABLE_NAMES["MessagesTable"], message_id)
        except BaseException as error:
            errors.append(error)

    threads = [
        threading.Thread(target=stop, args=(service, f"r{round_number:02}-stop{n:02}"))
        for n, service in enumerate(services)
    ]
    threads.append(threading.Thread(target=agent_works))
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + ROUND_TIMEOUT_S
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), f"round {round_number} did not end in time"
    return listed, errors


def _final_states(store: Store, ids: list[str]) -> dict[str, dict[str, str]]:
    keys = [{"id": {"S": message_id}} for message_id in ids]
    items: list[dict[str, Any]] = []
    for start in range(0, len(keys), 100):
        response = store.dynamodb.batch_get_item(
            RequestItems={TABLE_NAMES["MessagesTable"]: {"Keys": keys[start : start + 100]}}
        )
        items.extend(response["Responses"][TABLE_NAMES["MessagesTable"]])
    return {item["id"]["S"]: {name: value["S"] for name, value in item.items()} for item in items}


def test_concurrent_stops_list_each_cancelled_message_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan: FaultPlan = install(monkeypatch)  # no faults: only its lock and its record of events
    store.put_project()
    services = _container_services(STOPS)
    agent = boto3.client("dynamodb")
    events_per_cancelled: list[int] = []
    completed = cancelled = events_for_completed = rounds = 0
    began = time.monotonic()
    for round_number in range(ROUNDS):
        assert time.monotonic() - began < TOTAL_TIMEOUT_S, f"only {rounds} rounds in {TOTAL_TIMEOUT_S} s"
        ids = _seed(store, round_number)
        published_before = len(plan.published)
        listed, errors = _run_round(services, agent, ids, round_number)
        assert errors == [], f"round {round_number}: {errors!r}"
        rounds += 1

        listings = Counter(message_id for cancelled_ids in listed.values() for message_id in cancelled_ids)
        lister = {message_id: request for request, ids_ in listed.items() for message_id in ids_}
        events = by_request_id(plan.published[published_before:])
        per_message: Counter[str] = Counter()
        for request_id, counts in events.items():
            assert max(counts.values()) == 1, f"{request_id} published two events for a message"
            per_message.update(counts)
        for message_id, item in _final_states(store, ids).items():
            if item["status"] == "cancelled":
                cancelled += 1
                assert listings[message_id] == 1, f"{message_id} listed by {listings[message_id]} Stops"
                assert lister[message_id] == item["cancelRequestId"], f"{message_id} listed by the wrong Stop"
                assert events[item["cancelRequestId"]][message_id] == 1, (
                    f"{message_id} cancelled without event"
                )
                events_per_cancelled.append(per_message[message_id])
            else:
                assert item["status"] == "completed", f"{message_id} ended {item['status']}"
                assert listings[message_id] == 0, f"completed {message_id} listed as cancelled"
                completed += 1
                events_for_completed += per_message[message_id]

    elapsed = time.monotonic() - began
    record(
        TITLE,
        f"rounds {rounds}, Stops {rounds * STOPS} ({STOPS} at once), messages {rounds * MESSAGES_PER_ROUND}:"
        f" cancelled {cancelled}, completed by the agent {completed}",
        f"events published for cancelled messages {sum(events_per_cancelled)}: per cancelled message"
        f" mean {mean(events_per_cancelled) if events_per_cancelled else 0:.2f},"
        f" max {max(events_per_cancelled, default=0)}",
        f"events published for messages the agent completed first: {events_for_completed}",
        f"time {elapsed:.1f} s",
    )
    assert cancelled > 0
