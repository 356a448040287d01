"""Shared fixtures: moto with the template's tables and bus, a local JWKS server, real tokens."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Powertools reads these when the handler modules are imported, as Lambda's environment would be.
os.environ.update(
    POWERTOOLS_SERVICE_NAME="cancel-service",
    POWERTOOLS_METRICS_NAMESPACE="StopTheAI",
    POWERTOOLS_TRACE_DISABLED="true",
)

import boto3
import pytest
from agent_scene import AGENT_STATE_MACHINE_ARN
from moto import mock_aws

from cancel_service import config, runtime
from devstack.clerk import DEV_ISSUER, DEV_ORIGIN, JwksServer, SigningKey, session_claims
from devstack.provision import create_tables
from devstack.template import load_template

ROOT = Path(__file__).resolve().parent.parent
TABLE_NAMES = {"MessagesTable": "test-messages", "ProjectsTable": "test-projects"}
BUS_NAME = "test-cancel-bus"
OWNER = "user_2owner"
OTHER_USER = "user_2stranger"
ORG = "org_2team"
PROJECT = "k57abc123def456"


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey.generate("ins_test_key_1")


@pytest.fixture
def jwks(signing_key: SigningKey) -> Iterator[JwksServer]:
    with JwksServer([signing_key]) as server:
        yield server


def _per_container_caches() -> list[Any]:
    return [
        value
        for module in (config, runtime)
        for value in vars(module).values()
        if hasattr(value, "cache_clear")
    ]


@pytest.fixture(autouse=True)
def fresh_container() -> Iterator[None]:
    """Each test is a new Lambda container: configuration, clients and JWKS cache built anew."""
    for cached in _per_container_caches():
        cached.cache_clear()
    yield
    for cached in _per_container_caches():
        cached.cache_clear()


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, jwks: JwksServer) -> None:
    values = {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_SERVICE_NAME": "cancel-service",
        "POWERTOOLS_METRICS_NAMESPACE": "StopTheAI",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "MESSAGES_TABLE": TABLE_NAMES["MessagesTable"],
        "PROJECTS_TABLE": TABLE_NAMES["ProjectsTable"],
        "EVENT_BUS_NAME": BUS_NAME,
        "CLERK_ISSUER": DEV_ISSUER,
        "CLERK_JWKS_URL": jwks.url,
        "CLERK_AUTHORIZED_PARTIES": DEV_ORIGIN,
        "AGENT_STATE_MACHINE_ARN": AGENT_STATE_MACHINE_ARN,
        # Fast enough that no test waits for the stopper's pace (tests of the pace set their own).
        "STOP_EXECUTIONS_PER_SECOND": "1000",
        "STOP_MAXIMUM_CONCURRENCY": "1",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    for name in ("CLERK_JWT_KEY", "CLERK_PUBLISHABLE_KEY", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


@dataclass
class Store:
    """The moto account of one test, with helpers to seed and inspect it."""

    dynamodb: Any
    events: Any
    sqs: Any
    queue_url: str

    def put_project(
        self, project_id: str = PROJECT, owner_id: str = OWNER, org_id: str | None = None
    ) -> None:
        item = {"id": {"S": project_id}, "ownerId": {"S": owner_id}}
        if org_id:
            item["orgId"] = {"S": org_id}
        self.dynamodb.put_item(TableName=TABLE_NAMES["ProjectsTable"], Item=item)

    def put_message(
        self,
        message_id: str,
        *,
        project_id: str = PROJECT,
        conversation_id: str = "conv_1",
        status: str = "processing",
        execution_arn: str | None = None,
        updated_at: str = "2026-11-24T12:00:00.000Z",
    ) -> None:
        item = {
            "id": {"S": message_id},
            "projectId": {"S": project_id},
            "conversationId": {"S": conversation_id},
            "status": {"S": status},
            "createdAt": {"S": "2026-11-24T11:59:00.000Z"},
            "updatedAt": {"S": updated_at},
        }
        if execution_arn:
            item["executionArn"] = {"S": execution_arn}
        self.dynamodb.put_item(TableName=TABLE_NAMES["MessagesTable"], Item=item)

    def message(self, message_id: str) -> dict[str, str]:
        item = self.dynamodb.get_item(TableName=TABLE_NAMES["MessagesTable"], Key={"id": {"S": message_id}})[
            "Item"
        ]
        return {name: value["S"] for name, value in item.items()}

    def status(self, message_id: str) -> str:
        return self.message(message_id)["status"]

    def published(self) -> list[dict[str, Any]]:
        """Every event the bus delivered to the test's catch-all queue."""
        events = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not batch:
                return events
            for message in batch:
                events.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


def bus_with_capture_queue(events: Any, sqs: Any, bus_name: str, queue_name: str) -> str:
    """Create the bus and a queue that receives every event published under app.messages."""
    events.create_event_bus(Name=bus_name)
    queue_url: str = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="capture", EventBusName=bus_name, EventPattern=json.dumps({"source": ["app.messages"]})
    )
    events.put_targets(Rule="capture", EventBusName=bus_name, Targets=[{"Id": "queue", "Arn": queue_arn}])
    return queue_url


@pytest.fixture
def store(environment: None, template: dict[str, Any]) -> Iterator[Store]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        create_tables(dynamodb, TABLE_NAMES, template)
        events, sqs = boto3.client("events"), boto3.client("sqs")
        queue_url = bus_with_capture_queue(events, sqs, BUS_NAME, "published-events")
        yield Store(dynamodb, events, sqs, queue_url)


@pytest.fixture
def mint(signing_key: SigningKey) -> Callable[..., str]:
    """Mint a session token: `mint(user_id, org=..., headers=..., key=..., **claim overrides)`;
    a claim override of None removes the claim."""

    def _mint(
        user_id: str = OWNER,
        *,
        org: str | None = None,
        headers: dict[str, Any] | None = None,
        key: SigningKey | None = None,
        **overrides: Any,
    ) -> str:
        claims = session_claims(user_id, org_id=org)
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return (key or signing_key).sign(claims, headers)

    return _mint


@dataclass
class LambdaContext:
    function_name: str = "CancelFunction"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:CancelFunction"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


def load_event(name: str) -> dict[str, Any]:
    return json.loads((ROOT / "events" / name).read_text())


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The JSON log lines the function writes during the test (Powertools' handler, redirected)."""
    import io

    from cancel_service.observability import logger

    buffer = io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(buffer)  # type: ignore[attr-defined]
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    handler.setStream(previous)  # type: ignore[attr-defined]
