"""The service's queues as an operator's `status` and `redrive` see them (moto in this process):
every queue of template.yaml, created as the local stack creates them, and the stack's record in
CloudFormation (its parameters and resolved outputs), so that `--stack` reads what it reads from
a deployed stack."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3

from devstack.provision import provision, record_stack
from devstack.template import Template
from support.constants import AGENT_STATE_MACHINE_ARN

SERVICE_STACK = "cancel-service-test"
STOP_RATE = "20"


def service_template() -> Template:
    parameters = {
        "ClerkIssuer": "https://clerk.example.com",
        "AgentStateMachineArn": AGENT_STATE_MACHINE_ARN,
        "StopExecutionsPerSecond": STOP_RATE,
    }
    return Template(parameters, stack_name=SERVICE_STACK)


@dataclass
class ServiceQueues:
    """The template's queues in moto, by logical id, and a client to fill and read them. The
    lanes are read from the template (a queue with a redrive policy), so that the tests hold
    whatever lanes it has: `bulk_lane` is the paced one (its name says bulk, or the only lane)."""

    sqs: Any
    cloudwatch: Any
    urls: dict[str, str]
    names: dict[str, str]
    dead_letter_queue_of: dict[str, str]  # lane -> its dead-letter queue (logical ids)

    @property
    def bulk_lane(self) -> str:
        lanes = sorted(self.dead_letter_queue_of)
        (lane,) = [lane for lane in lanes if "Bulk" in lane] or lanes
        return lane

    @property
    def bulk_dead_letters(self) -> str:
        return self.dead_letter_queue_of[self.bulk_lane]

    def send(self, logical_id: str, bodies: list[dict[str, Any]], **attributes: str) -> None:
        for start in range(0, len(bodies), 10):
            self.sqs.send_message_batch(
                QueueUrl=self.urls[logical_id],
                Entries=[
                    {
                        "Id": str(index),
                        "MessageBody": json.dumps(body),
                        **(
                            {
                                "MessageAttributes": {
                                    name: {"DataType": "String", "StringValue": value}
                                    for name, value in attributes.items()
                                }
                            }
                            if attributes
                            else {}
                        ),
                    }
                    for index, body in enumerate(bodies[start : start + 10])
                ],
            )

    def drain(self, logical_id: str) -> list[dict[str, Any]]:
        """Every message of the queue (received and deleted), with its attributes."""
        drained: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.urls[logical_id], MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not messages:
                return drained
            for message in messages:
                self.sqs.delete_message(
                    QueueUrl=self.urls[logical_id], ReceiptHandle=message["ReceiptHandle"]
                )
            drained.extend(messages)


def create_service_queues() -> ServiceQueues:
    """Inside mock_aws: the template's tables, bus and queues, and the stack's record."""
    template = service_template()
    sqs = boto3.client("sqs")
    provision(template, boto3.client("dynamodb"), boto3.client("events"), sqs)
    record_stack(boto3.client("cloudformation"), template, {"ApiUrl": "https://api.example.com"})
    queues = template.of_type("AWS::SQS::Queue")
    names = {logical_id: template.physical_name(logical_id) for logical_id in queues}
    urls = {logical_id: sqs.get_queue_url(QueueName=name)["QueueUrl"] for logical_id, name in names.items()}
    dead_letter_queue_of = {
        logical_id: queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for logical_id, queue in queues.items()
        if "RedrivePolicy" in (queue.get("Properties") or {})
    }
    return ServiceQueues(sqs, boto3.client("cloudwatch"), urls, names, dead_letter_queue_of)
