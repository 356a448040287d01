"""Fixtures of the in-process tests of the functions: for the agent-facing ones (stop target, bulk
cancel, execution status) the stand-in agent and rules with the template's patterns."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from support.agent_scene import Agent, Route
from support.constants import AGENT_NAME, AGENT_ROLE, AGENT_STATE_MACHINE_ARN, BUS_NAME, STAND_IN_AGENT
from support.events import rule_pattern
from support.store import Store


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


@pytest.fixture
def agent(store: Store) -> Iterator[Agent]:
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
