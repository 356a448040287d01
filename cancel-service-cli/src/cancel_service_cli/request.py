"""Putting the operator's bulk request on the service's bus: which bus (named, or the output of
the service's CloudFormation stack), and whether EventBridge accepted the request."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from cancel_service.adapters.bulk_events import BULK_REQUESTED

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

# The source of what an operator puts on the bus: anything but app.messages may request a bulk,
# and only the service's own app.messages.bulk may carry a position.
OPERATOR_SOURCE = "app.operator"
STACK_BUS_OUTPUT = "EventBusName"


class CommandError(Exception):
    """The command cannot go on; the message says why (exit 1)."""


def bus_of_stack(cloudformation: Any, stack_name: str) -> str:
    """The stack's output EventBusName. (`cloudformation`: a boto3 CloudFormation client.)"""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        raise CommandError(f"stack {stack_name}: {error.response['Error'].get('Message', error)}") from None
    for output in stacks[0].get("Outputs", []) if stacks else []:
        if output.get("OutputKey") == STACK_BUS_OUTPUT:
            return str(output["OutputValue"])
    raise CommandError(f"stack {stack_name} has no output {STACK_BUS_OUTPUT}")


def put_bulk_request(events: EventBridgeClient, bus: str, detail: dict[str, Any]) -> None:
    """Put the request; raise CommandError unless EventBridge accepted this very entry."""
    response = events.put_events(
        Entries=[
            {
                "EventBusName": bus,
                "Source": OPERATOR_SOURCE,
                "DetailType": BULK_REQUESTED,
                "Detail": json.dumps(detail, separators=(",", ":")),
            }
        ]
    )
    entries = response.get("Entries") or [{}]
    if response.get("FailedEntryCount") or "ErrorCode" in entries[0] or "EventId" not in entries[0]:
        raise CommandError(
            f"EventBridge did not accept the request on bus {bus}: "
            f"{entries[0].get('ErrorCode', 'no event id')} {entries[0].get('ErrorMessage', '')}".rstrip()
        )
