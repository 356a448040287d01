"""What the operator's commands read of the service's CloudFormation stack: its outputs (the
names and URLs of its bus, tables and queues) and its parameters (e.g. StopExecutionsPerSecond);
and the AWS session they all use."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError

from cancel_service_cli.errors import CommandError


@dataclass(frozen=True, slots=True)
class Stack:
    name: str
    outputs: dict[str, str]
    parameters: dict[str, str]

    def output(self, key: str) -> str:
        if key not in self.outputs:
            raise CommandError(f"stack {self.name} has no output {key}")
        return self.outputs[key]


def aws_session() -> boto3.session.Session:
    """The standard AWS environment's session. boto3 reads the region from AWS_DEFAULT_REGION
    only; AWS_REGION, which the AWS CLI and the other SDKs read (and the local stack's banner
    shows), is honoured too when AWS_DEFAULT_REGION is not set."""
    region = None if os.environ.get("AWS_DEFAULT_REGION") else os.environ.get("AWS_REGION") or None
    return boto3.session.Session(region_name=region)


def where(client: Any) -> str:
    """The region and endpoint a client calls, for an error that depends on them (a stack or a
    bus exists in one region, of one endpoint)."""
    return f"region {client.meta.region_name}, endpoint {client.meta.endpoint_url}"


def describe_stack(cloudformation: Any, name: str) -> Stack:
    """The stack's outputs and parameters. (`cloudformation`: a boto3 CloudFormation client.)"""
    try:
        (stack,) = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except ClientError as error:
        message = error.response["Error"].get("Message", error)
        raise CommandError(f"stack {name}: {message} ({where(cloudformation)})") from None
    return Stack(
        name=name,
        outputs={str(o["OutputKey"]): str(o["OutputValue"]) for o in stack.get("Outputs", [])},
        parameters={
            str(p["ParameterKey"]): str(p.get("ResolvedValue", p.get("ParameterValue", "")))
            for p in stack.get("Parameters", [])
        },
    )
