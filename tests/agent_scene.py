"""The scene of the agent-facing tests: the stand-in agent, EventBridge-shaped events, routing by
the template's own rule patterns, and a Lambda context whose time runs out."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from moto.events.models import EventPattern

ROOT = Path(__file__).resolve().parent.parent
STAND_IN_AGENT = ROOT / "devstack" / "agent" / "stand_in_agent.asl.json"
# Named as the local stack names it (devstack.stack.stand_in_agents), so the sample events fit both.
AGENT_NAME = "cancel-service-local-stand_in_agent"
AGENT_ROLE = "arn:aws:iam::123456789012:role/stand-in-agent"
ACCOUNT = "123456789012"
REGION = "us-east-1"
AGENT_STATE_MACHINE_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{AGENT_NAME}"
ENDED = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


def rule_pattern(template: dict[str, Any], function: str, event: str) -> dict[str, Any]:
    """The EventPattern of one of the template's EventBridgeRule events, parameters filled in."""
    pattern = template["Resources"][function]["Properties"]["Events"][event]["Properties"]["Pattern"]
    text = json.dumps(pattern).replace(
        json.dumps({"Ref": "AgentStateMachineArn"}), json.dumps(AGENT_STATE_MACHINE_ARN)
    )
    return json.loads(text)


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """EventBridge's own matching (moto's implementation of it)."""
    return EventPattern.load(json.dumps(pattern)).matches_event(event)


def eventbridge_event(detail_type: str, detail: dict[str, Any], *, source: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [],
        "detail": detail,
    }


@dataclass
class Route:
    """A rule on the test bus with a template pattern, delivering to its own queue."""

    sqs: Any
    queue_url: str

    def take(self) -> list[dict[str, Any]]:
        events = []
        while batch := self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for message in batch:
                # moto's delivery to SQS leaves out `account`, which EventBridge always sends.
                events.append({"account": ACCOUNT, **json.loads(message["Body"])})
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return events


@dataclass
class Agent:
    """The stand-in agent on moto Step Functions, with executions that really run."""

    sfn: Any
    state_machine_arn: str
    started: dict[str, str] = field(default_factory=dict)

    def start(self, message_id: str) -> str:
        arn = self.sfn.start_execution(stateMachineArn=self.state_machine_arn, name=message_id)[
            "executionArn"
        ]
        self.started[message_id] = arn
        self.wait_for(arn, {"RUNNING"})
        return arn

    def status(self, arn: str) -> str:
        return str(self.sfn.describe_execution(executionArn=arn)["status"])

    def wait_for(self, arn: str, statuses: set[str], timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while (status := self.status(arn)) not in statuses and time.monotonic() < deadline:
            time.sleep(0.02)
        return status

    def finished_execution(self, name: str) -> str:
        """An execution of a state machine that ends at once (SUCCEEDED)."""
        quick = self.sfn.create_state_machine(
            name="quick-agent",
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
            roleArn=AGENT_ROLE,
        )["stateMachineArn"]
        arn = self.sfn.start_execution(stateMachineArn=quick, name=name)["executionArn"]
        if self.wait_for(arn, set(ENDED)) != "SUCCEEDED":
            raise RuntimeError("the quick execution did not succeed")
        return str(arn)


@dataclass
class BudgetContext:
    """A Lambda context whose remaining time drops by `step_ms` each time it is asked."""

    remaining_ms: int
    step_ms: int
    function_name: str = "BulkCancelFunction"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:BulkCancelFunction"
    aws_request_id: str = "bulk-0000"

    def get_remaining_time_in_millis(self) -> int:
        self.remaining_ms -= self.step_ms
        return self.remaining_ms
