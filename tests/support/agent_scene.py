"""The scene of the agent-facing tests: the stand-in agent on moto Step Functions, and rules with
the template's own patterns that deliver to a queue of their own."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from support.constants import ACCOUNT, AGENT_ROLE

ENDED = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


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
        self._wait_until_at_work(arn)
        return str(arn)

    def _wait_until_at_work(self, arn: str, timeout: float = 5.0) -> None:
        """moto says RUNNING at once, but builds the execution in a thread of its own a moment
        later (longer on a loaded machine); a stop before that fails inside moto. The execution
        is at work once its history has begun."""
        deadline = time.monotonic() + timeout
        while not self.sfn.get_execution_history(executionArn=arn, maxResults=1)["events"]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the execution {arn} did not begin")
            time.sleep(0.02)

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
