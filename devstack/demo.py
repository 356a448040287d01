"""The demo: its identities, its data, and the stand-in agent its messages run on.

The demo user owns a project with processing messages in two conversations; in the local stack
each is worked on by a RUNNING execution of the stand-in agent (devstack/agent/*.asl.json), whose
task streams an answer into the message (devstack/agent/) until it is complete or cancelled.
`sam-seed` writes the same data without executions.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from devstack.constants import ACCOUNT, REGION, ROOT

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_stepfunctions import SFNClient

DEMO_USER = "user_2demoOwner0000000000000"
DEMO_ORG = "org_2demoTeam00000000000000000"
DEMO_PROJECT = "k57abc123def456"
DEMO_MESSAGES = (
    # id, conversation, status
    ("k58xyz789ghi012", "conv_planning", "processing"),
    ("k59abc456def789", "conv_refactor", "processing"),
    ("k5aplanned00001", "conv_planning", "completed"),
    ("k5bqueued000001", "conv_refactor", "pending"),
)
AGENT_DIR = ROOT / "devstack" / "agent"
AGENT_ROLE = f"arn:aws:iam::{ACCOUNT}:role/devstack-states"


def stand_in_agents(stack_name: str) -> list[tuple[str, Path]]:
    """The stand-in agent state machines of devstack/agent/ (name, definition file)."""
    return [
        (f"{stack_name}-{path.name.removesuffix('.asl.json')}", path)
        for path in sorted(AGENT_DIR.glob("*.asl.json"))
    ]


def stand_in_agent_arn(stack_name: str) -> str:
    """The ARN the local stack gives the template's AgentStateMachineArn: the first stand-in."""
    first, _ = stand_in_agents(stack_name)[0]
    return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{first}"


def create_stand_in_agents(sfn: SFNClient, stack_name: str) -> list[str]:
    """Create the stand-in agents; their ARNs, in order."""
    return [
        sfn.create_state_machine(name=name, definition=path.read_text(), roleArn=AGENT_ROLE)[
            "stateMachineArn"
        ]
        for name, path in stand_in_agents(stack_name)
    ]


class AgentSteps(Protocol):
    """Runs the step of each stand-in agent execution (devstack.agent.task_worker)."""

    def answer_seconds(self) -> int: ...

    def start(self, message_id: str) -> None: ...


def iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class DemoData:
    """The demo's rows in the template's ProjectsTable and MessagesTable (named by `table_name`,
    from their logical ids), and (with `sfn` and an agent) its agent executions."""

    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table_name: Callable[[str], str],
        sfn: SFNClient | None = None,
        agent: str | None = None,
        steps: AgentSteps | None = None,
    ) -> None:
        """`steps` runs the step of each execution (streaming its answer into the message)."""
        self._dynamodb, self._table_name, self._sfn, self._agent = dynamodb, table_name, sfn, agent
        self._steps = steps

    def seed(self) -> list[str]:
        """(Re)write the demo project and its messages, each processing one with a new RUNNING
        execution when there is an agent to run. Returns the processing message ids."""
        self._dynamodb.put_item(
            TableName=self._table_name("ProjectsTable"),
            Item={
                "id": {"S": DEMO_PROJECT},
                "ownerId": {"S": DEMO_USER},
                "orgId": {"S": DEMO_ORG},
                "name": {"S": "Demo project"},
            },
        )
        processing, steps = [], []
        for message_id, conversation, status in DEMO_MESSAGES:
            now = iso_now()
            item = {
                "id": {"S": message_id},
                "projectId": {"S": DEMO_PROJECT},
                "conversationId": {"S": conversation},
                "status": {"S": status},
                "createdAt": {"S": now},
                "updatedAt": {"S": now},
            }
            if status == "processing":
                processing.append(message_id)
                if self._sfn is not None and self._agent:
                    execution_input: dict[str, str | int] = {
                        "messageId": message_id,
                        "projectId": DEMO_PROJECT,
                        "conversationId": conversation,
                    }
                    if self._steps is not None:
                        execution_input["answerSeconds"] = self._steps.answer_seconds()
                        steps.append(message_id)
                    item["executionArn"] = {"S": _start_agent(self._sfn, self._agent, execution_input)}
            self._dynamodb.put_item(TableName=self._table_name("MessagesTable"), Item=item)
        for message_id in steps:  # once their messages are written
            assert self._steps is not None
            self._steps.start(message_id)
        return processing

    def messages(self, project_id: str) -> list[dict[str, Any]]:
        """Every message of a project with its agent execution's status (the demo page's view).

        Local only: a Scan is fine for a handful of demo items; the service itself never scans."""
        items = []
        pages = self._dynamodb.get_paginator("scan").paginate(
            TableName=self._table_name("MessagesTable"),
            FilterExpression="projectId = :p",
            ExpressionAttributeValues={":p": {"S": project_id}},
        )
        for page in pages:
            for raw in page["Items"]:
                item = {name: next(iter(value.values())) for name, value in raw.items()}
                if "executionArn" in item and self._sfn is not None:
                    with contextlib.suppress(Exception):
                        execution = self._sfn.describe_execution(executionArn=str(item["executionArn"]))
                        item["executionStatus"] = execution["status"]
                items.append(item)
        return sorted(
            items, key=lambda item: (item.get("conversationId", ""), item.get("createdAt", ""), item["id"])
        )


def _start_agent(sfn: SFNClient, agent: str, execution_input: dict[str, str | int]) -> str:
    """A RUNNING execution of the stand-in agent working on a message; its ARN."""
    execution = sfn.start_execution(
        stateMachineArn=agent,
        name=f"{execution_input['messageId']}-{uuid.uuid4().hex[:8]}",
        input=json.dumps(execution_input),
    )
    return execution["executionArn"]
