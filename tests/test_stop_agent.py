"""The stop target: a cancel through the HTTP function ends with the agent's execution ABORTED."""

from __future__ import annotations

import pytest
from agent_scene import Agent, eventbridge_event
from botocore.exceptions import ClientError

from cancel_service.adapters.aws import STOP_EXECUTION_CONFIG
from cancel_service.handlers import stop_agent
from conftest import OWNER, PROJECT, Store
from faults import client_error, install
from http_client import post_cancel

pytest_plugins = ["conftest_agent"]


def cancel_event(execution_arn: str, message_id: str = "m1") -> dict:
    return eventbridge_event(
        "Message Cancel Requested",
        {
            "messageId": message_id,
            "projectId": PROJECT,
            "conversationId": "conv_1",
            "executionArn": execution_arn,
            "requestedBy": OWNER,
            "reason": "user_request",
            "requestedAt": "2026-11-24T12:00:00.000Z",
        },
        source="app.messages",
    )


def test_cancel_over_http_aborts_the_agents_executions(
    store: Store, agent: Agent, route, mint, lambda_context
):
    stop_rule = route("StopAgentFunction", "CancelRequested")
    store.put_project()
    store.put_message("m1", conversation_id="conv_a", execution_arn=agent.start("m1"))
    store.put_message("m2", conversation_id="conv_b", execution_arn=agent.start("m2"))
    store.put_message("m3")  # not picked up by an agent yet: no execution to stop
    store.put_message("m4", status="completed", execution_arn=agent.start("m4"))

    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token=mint())
    assert sorted(answer.body["messageIds"]) == ["m1", "m2", "m3"]

    delivered = stop_rule.take()
    assert sorted(event["detail"]["messageId"] for event in delivered) == ["m1", "m2"]
    for event in delivered:
        assert stop_agent.handler(event, lambda_context) == {
            "messageId": event["detail"]["messageId"],
            "stopRequested": True,
        }
    assert agent.wait_for(agent.started["m1"], {"ABORTED"}) == "ABORTED"
    assert agent.wait_for(agent.started["m2"], {"ABORTED"}) == "ABORTED"
    assert agent.status(agent.started["m4"]) == "RUNNING"  # its message was not cancelled


def test_stop_names_the_error_and_who_asked(store, agent, monkeypatch, lambda_context):
    clients = install(monkeypatch)
    arn = agent.start("m1")

    stop_agent.handler(cancel_event(arn), lambda_context)

    assert clients["stepfunctions"].calls == [
        (
            "stop_execution",
            {"executionArn": arn, "error": "MessageCancelled", "cause": f"user_request requested by {OWNER}"},
        )
    ]
    assert agent.wait_for(arn, {"ABORTED"}) == "ABORTED"


def test_stopping_a_stopped_execution_succeeds_quietly(store, agent, lambda_context):
    # At-least-once delivery: the same cancel event may arrive twice.
    arn = agent.start("m1")
    stop_agent.handler(cancel_event(arn), lambda_context)
    assert agent.wait_for(arn, {"ABORTED"}) == "ABORTED"

    assert stop_agent.handler(cancel_event(arn), lambda_context)["stopRequested"] is True
    assert agent.status(arn) == "ABORTED"


def gone_execution(agent: Agent) -> str:
    return agent.state_machine_arn.replace(":stateMachine:", ":execution:") + ":long-gone"


def test_stopping_an_execution_that_does_not_exist_succeeds_quietly(store, agent, lambda_context):
    assert stop_agent.handler(cancel_event(gone_execution(agent)), lambda_context)["stopRequested"] is False


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
def test_an_execution_of_another_state_machine_is_refused_by_the_function_itself(
    store, agent, monkeypatch, lambda_context, execution_arn
):
    clients = install(monkeypatch)
    if execution_arn == "another-state-machine":
        execution_arn = agent.finished_execution("m1")  # a real execution of another state machine

    answer = stop_agent.handler(cancel_event(execution_arn), lambda_context)

    assert answer == {"stopRequested": False, "rejected": True}
    stepfunctions = clients.get("stepfunctions")
    assert stepfunctions is None or stepfunctions.calls == []  # refused before any call


def test_a_stop_that_keeps_failing_raises_so_lambda_retries_and_dead_letters_it(
    store, agent, monkeypatch, lambda_context
):
    clients = install(monkeypatch)
    arn = agent.start("m1")
    stop_agent.handler(cancel_event(gone_execution(agent)), lambda_context)  # builds the client

    def throttled(**kwargs):
        raise client_error("ThrottlingException", "StopExecution")

    clients["stepfunctions"].intercept["stop_execution"] = throttled

    with pytest.raises(ClientError):
        stop_agent.handler(cancel_event(arn), lambda_context)


def test_throttled_stops_are_retried_with_backoff_by_the_client():
    # Adaptive mode: client-side rate limiting once throttled, on top of the standard backoff.
    assert STOP_EXECUTION_CONFIG.retries == {"mode": "adaptive", "total_max_attempts": 10}


def test_an_event_without_an_execution_arn_is_refused_not_retried(store, lambda_context, log_lines):
    event = cancel_event("arn:aws:states:us-east-1:123456789012:execution:agent:x")
    del event["detail"]["executionArn"]

    assert stop_agent.handler(event, lambda_context) == {"stopRequested": False, "rejected": True}
    assert any(line["message"].startswith("agent stop rejected") for line in log_lines())
