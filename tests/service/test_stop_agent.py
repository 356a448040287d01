"""The stopper: a stop queue's records (each an EventBridge `Message Cancel Requested` event)
become StopExecution calls on the agent's executions, failing record by record. (The lanes, the
bulk lane's pace and the invocation's time: test_stop_lanes.)"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from cancel_service.adapters.aws import STOP_EXECUTION_CONFIG
from cancel_service.handlers import stop_agent
from devstack.sqs_source import sqs_record
from support.agent_scene import Agent
from support.client_faults import client_error, install
from support.constants import OWNER, PROJECT
from support.http_api import post_cancel
from support.stop_requests import QUEUE_ARN, batch, cancel_event, failed_ids, lane_queue, record
from support.store import Store


def gone_execution(agent: Agent) -> str:
    return agent.state_machine_arn.replace(":stateMachine:", ":execution:") + ":long-gone"


@pytest.fixture
def stop_queue(store: Store, template: dict[str, Any]) -> str:
    """The template's user stop rule on the test bus, delivering to a queue as EventBridge does."""
    return lane_queue(store, template, "UserStopRequests")


def test_cancel_over_http_aborts_the_agents_executions_through_the_queue(
    store: Store, agent: Agent, stop_queue: str, mint, lambda_context
):
    store.put_project()
    store.put_message("m1", conversation_id="conv_a", execution_arn=agent.start("m1"))
    store.put_message("m2", conversation_id="conv_b", execution_arn=agent.start("m2"))
    store.put_message("m3")  # not picked up by an agent yet: no execution to stop
    store.put_message("m4", status="completed", execution_arn=agent.start("m4"))

    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token=mint())
    assert sorted(answer.body["messageIds"]) == ["m1", "m2", "m3"]

    messages = store.sqs.receive_message(QueueUrl=stop_queue, MaxNumberOfMessages=10)["Messages"]
    events = [json.loads(message["Body"]) for message in messages]
    assert sorted(event["detail"]["messageId"] for event in events) == ["m1", "m2"]
    assert {event["account"] for event in events} == {"123456789012"}  # the whole EventBridge event

    answer = stop_agent.user_lane_handler(
        batch(*(sqs_record(m, QUEUE_ARN) for m in messages)), lambda_context
    )

    assert answer == {"batchItemFailures": []}
    assert agent.wait_for(agent.started["m1"], {"ABORTED"}) == "ABORTED"
    assert agent.wait_for(agent.started["m2"], {"ABORTED"}) == "ABORTED"
    assert agent.status(agent.started["m4"]) == "RUNNING"  # its message was not cancelled


@pytest.mark.usefixtures("store")
def test_stop_names_the_error_and_who_asked(agent, monkeypatch, lambda_context):
    clients = install(monkeypatch)
    arn = agent.start("m1")

    assert stop_agent.user_lane_handler(batch(record(cancel_event(arn))), lambda_context) == {
        "batchItemFailures": []
    }

    assert clients["stepfunctions"].calls == [
        (
            "stop_execution",
            {"executionArn": arn, "error": "MessageCancelled", "cause": f"user_request requested by {OWNER}"},
        )
    ]
    assert agent.wait_for(arn, {"ABORTED"}) == "ABORTED"


@pytest.mark.usefixtures("store")
def test_stopping_a_stopped_or_vanished_execution_succeeds_quietly(agent, lambda_context, log_lines):
    # At-least-once delivery: the same cancel event may arrive twice, even in one batch.
    arn = agent.start("m1")
    stop_agent.user_lane_handler(batch(record(cancel_event(arn))), lambda_context)
    assert agent.wait_for(arn, {"ABORTED"}) == "ABORTED"

    again = batch(
        record(cancel_event(arn)), record(cancel_event(arn)), record(cancel_event(gone_execution(agent)))
    )
    assert stop_agent.user_lane_handler(again, lambda_context) == {"batchItemFailures": []}

    assert agent.status(arn) == "ABORTED"
    handled = [line for line in log_lines() if line["message"] == "agent stop handled"]
    # The first stop, then the batch's three, stopped at once: in the order their threads end.
    assert handled[0]["stopped"] is True
    assert sorted(line["stopped"] for line in handled[1:]) == [False, True, True]


@pytest.mark.parametrize(
    "execution_arn",
    [
        "another-state-machine",
        "arn:aws:states:us-east-1:123456789012:execution:cancel-service-local-stand_in_agent-2:m1",
        "arn:aws:states:us-east-1:999999999999:execution:cancel-service-local-stand_in_agent:m1",
        "arn:aws:states:eu-west-1:123456789012:execution:cancel-service-local-stand_in_agent:m1",
        "arn:aws:states:us-east-1:123456789012:execution:cancel-service-local-stand_in_agent:m1:extra",
        "arn:aws:states:us-east-1:123456789012:express:cancel-service-local-stand_in_agent:m1:x",
    ],
    ids=["other-machine", "name-prefix", "other-account", "other-region", "extra-part", "express"],
)
@pytest.mark.usefixtures("store")
def test_an_execution_of_another_state_machine_is_refused_and_never_retried(
    agent, monkeypatch, lambda_context, log_lines, execution_arn
):
    clients = install(monkeypatch)
    if execution_arn == "another-state-machine":
        execution_arn = agent.finished_execution("m1")  # a real execution of another state machine

    answer = stop_agent.user_lane_handler(batch(record(cancel_event(execution_arn))), lambda_context)

    assert answer == {"batchItemFailures": []}  # handled: retrying cannot make it succeed
    stepfunctions = clients.get("stepfunctions")
    assert stepfunctions is None or stepfunctions.calls == []  # refused before any call
    assert any(line["message"].startswith("agent stop rejected") for line in log_lines())


@pytest.mark.usefixtures("store")
def test_records_that_are_no_cancel_event_are_refused_and_never_retried(agent, lambda_context, log_lines):
    without_arn = cancel_event("arn:aws:states:us-east-1:123456789012:execution:agent:x")
    del without_arn["detail"]["executionArn"]
    arn = agent.start("m1")

    answer = stop_agent.user_lane_handler(
        batch(record(without_arn), record("not json at all"), record(cancel_event(arn))), lambda_context
    )

    assert answer == {"batchItemFailures": []}
    assert agent.wait_for(arn, {"ABORTED"}) == "ABORTED"  # the good record of the batch is stopped
    rejected = [line for line in log_lines() if line["message"].startswith("agent stop rejected")]
    assert len(rejected) == 2


@pytest.mark.usefixtures("store")
def test_a_failing_stop_fails_its_record_alone(agent, monkeypatch, lambda_context, log_lines):
    clients = install(monkeypatch)
    first, failing, last = agent.start("m1"), agent.start("m2"), agent.start("m3")
    records = [record(cancel_event(arn, message_id)) for message_id, arn in agent.started.items()]
    stop_agent.user_lane_handler(
        batch(record(cancel_event(gone_execution(agent)))), lambda_context
    )  # builds the client
    stepfunctions = clients["stepfunctions"]

    def stop_execution(**kwargs: Any) -> Any:
        if kwargs["executionArn"] == failing:
            raise client_error("ServiceUnavailable", "StopExecution")
        return stepfunctions.real.stop_execution(**kwargs)

    stepfunctions.intercept["stop_execution"] = stop_execution

    answer = stop_agent.user_lane_handler(batch(*records), lambda_context)

    assert failed_ids(answer) == [records[1]["messageId"]]
    assert agent.wait_for(first, {"ABORTED"}) == "ABORTED"
    assert agent.wait_for(last, {"ABORTED"}) == "ABORTED"
    assert agent.status(failing) == "RUNNING"
    failures = [line for line in log_lines() if line["message"].startswith("agent stop failed")]
    assert [line["execution_arn"] for line in failures] == [failing]


def throttle_every_stop(client: Any) -> list[int]:
    """StopExecution answers ThrottlingException on the wire, so botocore's retries see it."""
    attempts: list[int] = []

    def throttled(request: Any, **_kwargs: Any) -> AWSResponse:
        attempts.append(1)
        body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
        response = AWSResponse(
            request.url, 400, HTTPHeaders.from_dict({"Content-Type": "application/x-amz-json-1.0"}), None
        )
        response._content = body  # type: ignore[attr-defined]
        return response

    # First, ahead of moto's own stand-in for the network: botocore takes the first answer.
    client.meta.events.register_first("before-send.sfn.StopExecution", throttled)
    return attempts


@pytest.mark.usefixtures("store")
def test_a_throttled_stop_is_reported_after_the_clients_retries_so_the_queue_retries_it(
    agent, monkeypatch, lambda_context
):
    # No backoff sleep in the test: the retries are what is checked, not their pace.
    monkeypatch.setattr(
        "botocore.retries.standard.ExponentialBackoff.delay_amount", lambda _self, _context: 0
    )
    monkeypatch.setattr(
        "botocore.retries.adaptive.ClientRateLimiter.on_sending_request", lambda _self, **_kw: None
    )
    clients = install(monkeypatch)
    stop_agent.user_lane_handler(
        batch(record(cancel_event(gone_execution(agent)))), lambda_context
    )  # builds the client
    attempts = throttle_every_stop(clients["stepfunctions"].real)
    throttled, handled = record(cancel_event(gone_execution(agent))), record({"detail-type": "Other"})

    answer = stop_agent.user_lane_handler(batch(handled, throttled), lambda_context)

    assert failed_ids(answer) == [throttled["messageId"]]
    # botocore keeps each option as an attribute; its type stubs declare only the constructor.
    assert len(attempts) == STOP_EXECUTION_CONFIG.retries["total_max_attempts"]  # type: ignore[attr-defined]
