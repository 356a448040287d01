"""The two stop lanes: a user's Stop never waits behind a bulk; the bulk lane keeps its rate in every
one-second window whichever container calls, retries included; a stop batch never outlives its
invocation; stops Step Functions can never take are rejected once."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from moto.core.models import botocore_stubber

from cancel_service import runtime
from cancel_service.adapters import agent_executions, stop_pace
from cancel_service.adapters.agent_executions import ATTEMPT_RESERVE_SECONDS
from cancel_service.adapters.stop_pace import SharedPace
from cancel_service.handlers import stop_agent
from support.agent_scene import Agent
from support.client_faults import ClientWithFaults, install
from support.constants import BUS_NAME, PROJECT, TABLE_NAMES
from support.fake_clock import FakeClock
from support.http_api import post_cancel
from support.lambda_context import LambdaContext
from support.stop_requests import batch, cancel_event, failed_ids, lane_queue, record
from support.store import Store

if TYPE_CHECKING:
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

BULK_BACKLOG = 1_000  # moto's SQS slows with every queued message: a thousand keeps the test short


@dataclass
class ClockContext(LambdaContext):
    """A Lambda context whose remaining time runs on the test's clock."""

    clock: FakeClock = field(default_factory=FakeClock)
    deadline: float = 0.0

    def get_remaining_time_in_millis(self) -> int:
        return int((self.deadline - self.clock.now) * 1000)


def most_in_any_window(instants: list[float], window: float = 1.0) -> int:
    return max(sum(1 for other in instants if start <= other < start + window) for start in instants)


def on_the_clock(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    """The stoppers' pace and waits run on `clock`; their stops one at a time (a deterministic order)."""
    monkeypatch.setattr(stop_pace, "SharedPace", functools.partial(SharedPace, clock=clock))
    monkeypatch.setattr(
        agent_executions,
        "StopAttempts",
        functools.partial(agent_executions.StopAttempts, clock=clock, sleep=clock.sleep),
    )
    monkeypatch.setattr(runtime, "_STOPS", ThreadPoolExecutor(max_workers=1))


def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's own waits between attempts take no time: the attempts are what is checked."""
    monkeypatch.setattr(
        "botocore.retries.standard.ExponentialBackoff.delay_amount", lambda _self, _context: 0
    )
    monkeypatch.setattr(
        "botocore.retries.adaptive.ClientRateLimiter.on_sending_request", lambda _self, **_kw: None
    )


def wire_error(request: Any, code: str) -> AWSResponse:
    body = json.dumps({"__type": code, "message": code}).encode()
    headers = HTTPHeaders.from_dict({"Content-Type": "application/x-amz-json-1.0"})
    response = AWSResponse(request.url, 400, headers, None)
    response._content = body  # type: ignore[attr-defined]
    return response


def on_the_wire(
    monkeypatch: pytest.MonkeyPatch, lane: Callable[[], Any], answer: Callable[..., Any]
) -> dict[str, ClientWithFaults]:
    """A new container of `lane` whose StopExecution attempts (each one, retries included, after
    the stopper let it through) meet `answer(request, execution_arn)` instead of Step Functions
    (moto): an AWSResponse is the only answer, and moto never sees that attempt; None lets moto
    answer it.

    botocore calls every `before-send` handler, whatever an earlier one answered: with moto's
    handler left beside the test's, moto would also carry out an attempt the test answered (a
    "refused" stop would abort the execution all the same, or fail on moto's own errors)."""
    for cached in (runtime.user_lane_stops, runtime.bulk_lane_stops, runtime._dynamodb):
        cached.cache_clear()
    clients = install(monkeypatch)
    lane()  # builds the container's clients, the stopper's hook first
    events = clients["stepfunctions"].real.meta.events

    def step_functions(request: Any, event_name: str, **kwargs: Any) -> Any:
        if event_name == "before-send.sfn.StopExecution":
            response = answer(request, json.loads(request.body)["executionArn"])
            if response is not None:
                return response
        return botocore_stubber(event_name=event_name, request=request, **kwargs)

    # The stopper's hook, on the operation's own event, still runs before this one.
    events.unregister("before-send", botocore_stubber)
    events.register("before-send", step_functions)
    return clients


def bulk_event(execution_arn: str, message_id: str) -> dict[str, Any]:
    event = cancel_event(execution_arn, message_id)
    event["detail"] |= {"requestedBy": "system:bulk", "reason": "bulk_request"}
    return event


# --- A user's Stop never waits behind a bulk --------------------------------------------------------


def queued(store: Store, queue_url: str) -> int:
    attributes = store.sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def test_a_users_stop_is_stopped_before_a_thousand_queued_bulk_stops(
    store: Store, agent: Agent, template, mint, lambda_context
):
    user_queue = lane_queue(store, template, "UserStopRequests")
    bulk_queue = lane_queue(store, template, "BulkStopRequests")
    elsewhere = agent.state_machine_arn.replace(":stateMachine:", ":execution:") + ":bulk-"
    # A bulk's first cancel events go through the bus: the bulk rule takes them, the user rule not.
    entries: list[PutEventsRequestEntryTypeDef] = [
        {
            "Source": "app.messages",
            "DetailType": "Message Cancel Requested",
            "Detail": json.dumps(bulk_event(f"{elsewhere}{index}", f"b{index}")["detail"]),
            "EventBusName": BUS_NAME,
        }
        for index in range(10)
    ]
    assert store.events.put_events(Entries=entries)["FailedEntryCount"] == 0
    assert (queued(store, bulk_queue), queued(store, user_queue)) == (10, 0)
    # ... and many more wait behind them, as the rule delivers them (the whole event).
    for first in range(10, BULK_BACKLOG, 10):
        store.sqs.send_message_batch(
            QueueUrl=bulk_queue,
            Entries=[
                {"Id": str(index), "MessageBody": json.dumps(bulk_event(f"{elsewhere}{index}", f"b{index}"))}
                for index in range(first, first + 10)
            ],
        )
    assert queued(store, bulk_queue) == BULK_BACKLOG
    store.put_project()
    store.put_message("m1", conversation_id="conv_a", execution_arn=agent.start("m1"))
    store.put_message("m2", conversation_id="conv_b", execution_arn=agent.start("m2"))

    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token=mint())
    assert sorted(answer.body["messageIds"]) == ["m1", "m2"]

    # The user lane's first batch is the Stop's: nothing of the bulk is ahead of it.
    messages = store.sqs.receive_message(QueueUrl=user_queue, MaxNumberOfMessages=10)["Messages"]
    assert sorted(json.loads(m["Body"])["detail"]["messageId"] for m in messages) == ["m1", "m2"]
    records = [record(json.loads(m["Body"])) for m in messages]
    assert stop_agent.user_lane_handler(batch(*records), lambda_context) == {"batchItemFailures": []}
    assert agent.wait_for(agent.started["m1"], {"ABORTED"}) == "ABORTED"
    assert agent.wait_for(agent.started["m2"], {"ABORTED"}) == "ABORTED"
    assert queued(store, bulk_queue) == BULK_BACKLOG  # still waiting, all of it, in its own lane


# --- The bulk lane's pace ------------------------------------------------------------------------------


@pytest.mark.parametrize("claims", ["a moment per call", "a batch's moments at once"])
@pytest.mark.parametrize(
    ("rate", "window", "most"), [(5.0, 1.0, 5), (20.0, 1.0, 20), (2.5, 2.0, 5), (1.0, 1.0, 1)]
)
@pytest.mark.usefixtures("store")
def test_no_window_holds_more_than_the_rate_whichever_container_reserves(rate, window, most, claims):
    clock = FakeClock()
    dynamodb = runtime._dynamodb()
    containers = [
        SharedPace(dynamodb, TABLE_NAMES["StopPaceTable"], "bulk", rate, clock=clock) for _ in range(2)
    ]
    reserved: list[float] = []
    for round_ in range(6):
        for container in containers:  # each container's ten workers reserve at once
            if claims != "a moment per call":
                container.expect(5)
            reserved += [container.reserve() for _ in range(5)]
        if round_ == 2:
            clock.now += 0.37  # mid-second: a fresh container joins and knows nothing but the table
            containers.append(SharedPace(dynamodb, TABLE_NAMES["StopPaceTable"], "bulk", rate, clock=clock))
        clock.now = max(clock.now, reserved[-1] - 0.5)  # the workers wait, then reserve again

    assert most_in_any_window(reserved, window) == most
    assert sorted(reserved) == reserved  # moments follow each other, whoever took them
    assert len(set(reserved)) == len(reserved)


@pytest.mark.usefixtures("store")
def test_an_idle_lane_saves_nothing_up():
    clock = FakeClock()
    pace = SharedPace(runtime._dynamodb(), TABLE_NAMES["StopPaceTable"], "bulk", 4.0, clock=clock)
    for _ in range(4):
        pace.reserve()
    clock.now += 60  # an idle minute does not buy a minute's worth of stops

    reserved = [pace.reserve() for _ in range(12)]

    assert reserved[0] == pytest.approx(clock.now)
    assert most_in_any_window(reserved) == 4


@pytest.mark.usefixtures("store")
def test_a_moment_that_passed_unused_is_given_up_not_used_late():
    clock = FakeClock()
    dynamodb = runtime._dynamodb()
    pace, other = (
        SharedPace(dynamodb, TABLE_NAMES["StopPaceTable"], "bulk", 2.0, clock=clock) for _ in range(2)
    )
    pace.expect(4)
    first = pace.reserve()  # claims 4 moments, half a second apart
    clock.now += 1.2  # two of the three left pass unused (their stops needed no call)
    others = other.reserve()  # another container's moment, after the four claimed
    late = pace.reserve()

    assert late == pytest.approx(first + 1.5, abs=0.01)  # the one not yet passed, not one 0.7 s ago
    assert others == pytest.approx(first + 2.0, abs=0.01)
    assert most_in_any_window([first, late, others]) == 2


@pytest.mark.usefixtures("store")
def test_a_pace_that_loses_every_claim_to_other_containers_fails_the_call_for_the_queue_to_retry():
    clock = FakeClock()
    dynamodb = runtime._dynamodb()
    rival = SharedPace(dynamodb, TABLE_NAMES["StopPaceTable"], "bulk", 5.0, clock=clock)
    writes: list[str] = []

    class Contested:
        """The table, where another container claims just before each write of this one."""

        def update_item(self, **request: Any) -> Any:
            writes.append(request["ConditionExpression"])
            rival.reserve()
            return dynamodb.update_item(**request)

    pace = SharedPace(Contested(), TABLE_NAMES["StopPaceTable"], "bulk", 5.0, clock=clock)  # type: ignore[arg-type]

    with pytest.raises(RuntimeError, match="lost 20 claims of the stop pace in a row"):
        pace.reserve()
    assert len(writes) == stop_pace.MAX_LOST_RACES
    assert writes[1:] == ["nextCallAt = :seen"] * (len(writes) - 1)  # each after what it last saw


@pytest.mark.usefixtures("store")
def test_a_batch_claims_its_moments_in_one_write_and_stops_one_interval_apart(agent: Agent, monkeypatch):
    monkeypatch.setenv("STOP_EXECUTIONS_PER_SECOND", "5")
    clock = FakeClock()
    on_the_clock(monkeypatch, clock)
    attempts: list[float] = []
    arns = [agent.start(f"m{index}") for index in range(10)]
    clients = on_the_wire(
        monkeypatch, runtime.bulk_lane_stops, lambda _request, _arn: attempts.append(clock.now)
    )
    context = ClockContext(clock=clock, deadline=clock.now + 60)

    answer = stop_agent.bulk_lane_handler(
        batch(*(record(bulk_event(arn, f"m{index}")) for index, arn in enumerate(arns))), context
    )

    assert answer == {"batchItemFailures": []}
    pace_writes = [call for call in clients["dynamodb"].calls if call[0] == "update_item"]
    assert len(pace_writes) == 1  # not one per stop
    assert attempts[-1] - attempts[0] == pytest.approx(9 * 0.2, rel=0.005)
    assert most_in_any_window(attempts) == 5
    assert {agent.wait_for(arn, {"ABORTED"}) for arn in arns} == {"ABORTED"}


@pytest.mark.usefixtures("store")
def test_the_bulk_lane_drains_at_its_exact_rate_counting_retries_and_a_container_started_mid_second(
    agent: Agent, monkeypatch
):
    monkeypatch.setenv("STOP_EXECUTIONS_PER_SECOND", "5")
    no_backoff(monkeypatch)
    clock = FakeClock()
    on_the_clock(monkeypatch, clock)
    attempts: list[float] = []
    throttled: set[str] = set()

    def throttle_each_first_attempt(request: Any, execution_arn: str) -> AWSResponse | None:
        attempts.append(clock.now)
        if execution_arn in throttled:
            return None
        throttled.add(execution_arn)
        return wire_error(request, "ThrottlingException")

    arns = [agent.start(f"m{index}") for index in range(24)]
    records = [record(bulk_event(arn, f"m{index}")) for index, arn in enumerate(arns)]

    on_the_wire(monkeypatch, runtime.bulk_lane_stops, throttle_each_first_attempt)
    context = ClockContext(clock=clock, deadline=clock.now + 60)
    assert stop_agent.bulk_lane_handler(batch(*records[:12]), context) == {"batchItemFailures": []}
    clock.now += 0.1  # a new container, mid-interval: it must not go at once
    on_the_wire(monkeypatch, runtime.bulk_lane_stops, throttle_each_first_attempt)
    context = ClockContext(clock=clock, deadline=clock.now + 60)
    assert stop_agent.bulk_lane_handler(batch(*records[12:]), context) == {"batchItemFailures": []}

    assert len(attempts) == 48  # every stop throttled once, then retried by the client
    assert most_in_any_window(attempts) == 5
    # 5 per second, not 4: 47 intervals of 0.2 s (and a hair) from the first attempt to the last.
    assert attempts[-1] - attempts[0] == pytest.approx(47 * 0.2, rel=0.005)
    assert {agent.wait_for(arn, {"ABORTED"}) for arn in arns} == {"ABORTED"}


def test_a_user_lane_stop_is_not_paced(store: Store, agent: Agent, monkeypatch):
    monkeypatch.setenv("STOP_EXECUTIONS_PER_SECOND", "1")  # the bulk lane's: not the user lane's
    clock = FakeClock()
    on_the_clock(monkeypatch, clock)
    arns = [agent.start(f"m{index}") for index in range(10)]
    started = clock.now

    answer = stop_agent.user_lane_handler(
        batch(*(record(cancel_event(arn, f"m{index}")) for index, arn in enumerate(arns))),
        ClockContext(clock=clock, deadline=clock.now + 60),
    )

    assert answer == {"batchItemFailures": []}
    assert clock.now == started  # no stop waited
    assert {agent.wait_for(arn, {"ABORTED"}) for arn in arns} == {"ABORTED"}
    assert store.dynamodb.scan(TableName=TABLE_NAMES["StopPaceTable"])["Items"] == []  # no pace taken


# --- A stop batch never outlives its invocation ------------------------------------------------------


@pytest.mark.usefixtures("store")
def test_a_batch_of_slow_stops_returns_in_time_with_exactly_the_unreached_records_failed(
    agent: Agent, monkeypatch, log_lines
):
    clock = FakeClock()
    on_the_clock(monkeypatch, clock)

    def slow(_request: Any, _execution_arn: str) -> None:
        clock.now += 4.0  # each stop takes 4 s (Step Functions slow, the network slower)

    arns = [agent.start(f"m{index}") for index in range(10)]
    records = [record(cancel_event(arn, f"m{index}")) for index, arn in enumerate(arns)]
    on_the_wire(monkeypatch, runtime.user_lane_stops, slow)
    context = ClockContext(clock=clock, deadline=clock.now + 20)

    answer = stop_agent.user_lane_handler(batch(*records), context)

    # Begun with 20, 16, 12 and 8 s left; with 4 s left no stop fits (ATTEMPT_RESERVE_SECONDS).
    assert ATTEMPT_RESERVE_SECONDS <= 8
    assert failed_ids(answer) == [r["messageId"] for r in records[4:]]
    assert clock.now <= context.deadline
    assert {agent.wait_for(arn, {"ABORTED"}) for arn in arns[:4]} == {"ABORTED"}
    assert {agent.status(arn) for arn in arns[4:]} == {"RUNNING"}
    left = [line for line in log_lines() if line["message"].startswith("agent stop left for the queue")]
    assert len(left) == 6


@pytest.mark.usefixtures("store")
def test_the_clients_retries_stop_when_the_invocation_has_no_time_for_another(agent: Agent, monkeypatch):
    no_backoff(monkeypatch)
    clock = FakeClock()
    on_the_clock(monkeypatch, clock)
    attempts: list[float] = []

    def slow_throttle(request: Any, _execution_arn: str) -> AWSResponse:
        attempts.append(clock.now)
        clock.now += 3.0
        return wire_error(request, "ThrottlingException")

    stopped_in_time = record(cancel_event(agent.start("m1")))
    on_the_wire(monkeypatch, runtime.user_lane_stops, slow_throttle)
    context = ClockContext(clock=clock, deadline=clock.now + 12)

    answer = stop_agent.user_lane_handler(batch(stopped_in_time), context)

    assert failed_ids(answer) == [stopped_in_time["messageId"]]  # back to the queue, tried again later
    assert len(attempts) == 2  # with 12 s and 9 s left; not with 6 s
    assert clock.now <= context.deadline


@pytest.mark.usefixtures("store")
def test_a_paced_stop_whose_moment_comes_too_late_goes_back_to_the_queue(agent: Agent, monkeypatch):
    monkeypatch.setenv("STOP_EXECUTIONS_PER_SECOND", "1")
    clock = FakeClock()
    on_the_clock(monkeypatch, clock)
    arns = [agent.start(f"m{index}") for index in range(5)]
    records = [record(bulk_event(arn, f"m{index}")) for index, arn in enumerate(arns)]
    context = ClockContext(clock=clock, deadline=clock.now + ATTEMPT_RESERVE_SECONDS + 2.5)

    answer = stop_agent.bulk_lane_handler(batch(*records), context)

    # One per second: moments at 0, 1 and 2 s leave the reserve; the one at 3 s would not.
    assert failed_ids(answer) == [r["messageId"] for r in records[3:]]
    assert clock.now <= context.deadline
    assert {agent.wait_for(arn, {"ABORTED"}) for arn in arns[:3]} == {"ABORTED"}


# --- Stops that can never succeed ----------------------------------------------------------------------


@pytest.mark.parametrize("code", ["InvalidArn", "ValidationException"])
@pytest.mark.usefixtures("store")
def test_a_stop_step_functions_refuses_as_invalid_is_rejected_once(
    agent: Agent, monkeypatch, log_lines, code
):
    no_backoff(monkeypatch)
    attempts: list[str] = []

    def refuse(request: Any, execution_arn: str) -> AWSResponse:
        attempts.append(execution_arn)
        return wire_error(request, code)

    on_the_wire(monkeypatch, runtime.user_lane_stops, refuse)
    refused = record(cancel_event(agent.start("m1")))

    assert stop_agent.user_lane_handler(batch(refused), LambdaContext()) == {"batchItemFailures": []}
    assert len(attempts) == 1
    assert agent.status(agent.started["m1"]) == "RUNNING"  # refused: nothing was stopped
    [rejected] = [line for line in log_lines() if line["message"].startswith("agent stop rejected")]
    assert code in rejected["message"]


@pytest.mark.usefixtures("store")
def test_a_cause_longer_than_step_functions_takes_is_rejected_without_a_call(
    agent: Agent, monkeypatch, log_lines
):
    attempts: list[str] = []
    on_the_wire(monkeypatch, runtime.bulk_lane_stops, lambda _request, arn: attempts.append(arn))
    event = bulk_event(agent.start("m1"), "m1")
    event["detail"]["reason"] = "r" * 40_000
    fine = record(bulk_event(agent.start("m2"), "m2"))

    answer = stop_agent.bulk_lane_handler(batch(record(event), fine), LambdaContext())

    assert answer == {"batchItemFailures": []}
    assert attempts == [agent.started["m2"]]
    assert [line for line in log_lines() if line["message"].startswith("agent stop rejected: a cause of")]


@pytest.mark.parametrize(
    ("handler", "lane"), [(stop_agent.user_lane_handler, "user"), (stop_agent.bulk_lane_handler, "bulk")]
)
@pytest.mark.usefixtures("store")
def test_each_lane_counts_what_became_of_its_stops(agent: Agent, lambda_context, capfd, handler, lane):
    handler(batch(record(cancel_event(agent.start("m1"))), record("nonsense")), lambda_context)

    [blob] = [json.loads(line) for line in capfd.readouterr().out.splitlines() if '"_aws"' in line]
    assert blob["Lane"] == lane
    assert (blob["AgentStopsRequested"], blob["AgentStopsRejected"]) == ([1.0], [1.0])
