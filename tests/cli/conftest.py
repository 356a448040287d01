"""Fixtures of the operator's command tests: an operator's AWS environment with only the bus, or
with the service's queues and its stack."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from support.constants import BUS_NAME
from support.operator_bus import OPERATOR_RULE, Bus
from support.service_queues import ServiceQueues, create_service_queues


@pytest.fixture
def operator_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """An operator's standard AWS environment, with nothing of the developer's."""
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def service(operator_environment: None) -> Iterator[ServiceQueues]:  # noqa: ARG001
    """The service's queues (moto in this process) and its stack's record in CloudFormation."""
    with mock_aws():
        yield create_service_queues()


@pytest.fixture
def bus(operator_environment: None) -> Iterator[Bus]:  # noqa: ARG001
    """An operator's AWS environment (moto in this process): only the bus, no tables."""
    with mock_aws():
        events, sqs = boto3.client("events"), boto3.client("sqs")
        events.create_event_bus(Name=BUS_NAME)
        url = sqs.create_queue(QueueName="operator-requests")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(
            Name=OPERATOR_RULE,
            EventBusName=BUS_NAME,
            EventPattern=json.dumps({"source": ["app.operator"], "detail-type": ["Bulk Cancel Requested"]}),
        )
        events.put_targets(Rule=OPERATOR_RULE, EventBusName=BUS_NAME, Targets=[{"Id": "q", "Arn": arn}])
        yield Bus(events, sqs, url)
