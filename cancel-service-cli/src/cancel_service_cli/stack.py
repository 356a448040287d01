"""What the operator's commands read of the service's CloudFormation stack: its outputs (the
names and URLs of its bus and queues) and its parameters (e.g. StopExecutionsPerSecond)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from cancel_service_cli.request import CommandError


@dataclass(frozen=True, slots=True)
class Stack:
    name: str
    outputs: dict[str, str]
    parameters: dict[str, str]


def describe_stack(cloudformation: Any, name: str) -> Stack:
    """The stack's outputs and parameters. (`cloudformation`: a boto3 CloudFormation client.)"""
    try:
        (stack,) = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except ClientError as error:
        raise CommandError(f"stack {name}: {error.response['Error'].get('Message', error)}") from None
    return Stack(
        name=name,
        outputs={str(o["OutputKey"]): str(o["OutputValue"]) for o in stack.get("Outputs", [])},
        parameters={
            str(p["ParameterKey"]): str(p.get("ResolvedValue", p.get("ParameterValue", "")))
            for p in stack.get("Parameters", [])
        },
    )
