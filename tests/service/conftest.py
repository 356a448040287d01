"""Fixtures of the in-process tests of the functions: the stand-in agent and rules with the
template's patterns (for the agent-facing functions), the bulk and token scenes, the bulk reports,
and a warm container whose cancel calls are recorded on a timeline."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cancel_service.core import bulk
from support.agent_scene import Agent, Route
from support.bulk_scene import seed_bulk_scene
from support.cancel_timeline import Timeline
from support.client_faults import ClientWithFaults, install
from support.constants import (
    ACCOUNT,
    AGENT_NAME,
    AGENT_ROLE,
    AGENT_STATE_MACHINE_ARN,
    BUS_NAME,
    PROJECT,
    REGION,
    STAND_IN_AGENT,
)
from support.events import rule_pattern
from support.http_api import Answer, post_cancel
from support.store import Store
from support.token_scene import seed_token_scene


@pytest.fixture
def route(store: Store, template: dict[str, Any]) -> Callable[[str, str], Route]:
    def _route(function: str, event: str) -> Route:
        name = f"{function}-{event}"
        queue_url = store.sqs.create_queue(QueueName=name)["QueueUrl"]
        queue_arn = store.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        store.events.put_rule(
            Name=name, EventBusName=BUS_NAME, EventPattern=json.dumps(rule_pattern(template, function, event))
        )
        store.events.put_targets(
            Rule=name, EventBusName=BUS_NAME, Targets=[{"Id": "queue", "Arn": queue_arn}]
        )
        return Route(store.sqs, queue_url)

    return _route


# In the test's moto account: a dependency, whose value it does not need.
@pytest.fixture
def agent(store: Store) -> Iterator[Agent]:  # noqa: ARG001
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions")
        arn = sfn.create_state_machine(
            name=AGENT_NAME, definition=STAND_IN_AGENT.read_text(), roleArn=AGENT_ROLE
        )["stateMachineArn"]
        if arn != AGENT_STATE_MACHINE_ARN:
            raise RuntimeError(f"the stand-in agent is {arn}, not {AGENT_STATE_MACHINE_ARN}")
        agent = Agent(sfn, arn)
        yield agent
        for execution_arn in agent.started.values():
            if agent.status(execution_arn) == "RUNNING":
                sfn.stop_execution(executionArn=execution_arn)


@pytest.fixture
def bulk_scene(store: Store) -> Store:
    return seed_bulk_scene(store)


@pytest.fixture
def reports(store: Store) -> Callable[[], list[dict[str, Any]]]:
    """The `Bulk Cancel Completed` events the bulk function publishes."""
    queue_url = store.sqs.create_queue(QueueName="bulk-reports")["QueueUrl"]
    store.events.put_rule(
        Name="bulk-reports",
        EventBusName=BUS_NAME,
        EventPattern=json.dumps({"source": ["app.messages.bulk"], "detail-type": ["Bulk Cancel Completed"]}),
    )
    store.events.put_targets(
        Rule="bulk-reports",
        EventBusName=BUS_NAME,
        Targets=[{"Id": "queue", "Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:bulk-reports"}],
    )
    return lambda: [event["detail"] for event in Route(store.sqs, queue_url).take()]


@pytest.fixture
def no_retry_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "RETRY_DELAY_SECONDS", 0.0)


@pytest.fixture
def token_scene(store: Store) -> Store:
    return seed_token_scene(store)


# --- the cancel core on a timeline -------------------------------------------------------------


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
    bus_without_rules: Store,  # noqa: ARG001 - a dependency for its effect: the bus routes nothing
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
