"""Putting the operator's bulk request on the service's bus: which bus (named, or the output of
the service's CloudFormation stack), whether a rule on it takes bulk requests, and whether
EventBridge accepted the request."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from cancel_service.adapters.bulk_events import BULK_REQUESTED
from cancel_service_cli.errors import CommandError
from cancel_service_cli.stack import describe_stack, where

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

# The source of what an operator puts on the bus: anything but app.messages may request a bulk,
# and only the service's own app.messages.bulk may carry a position.
OPERATOR_SOURCE = "app.operator"
STACK_BUS_OUTPUT = "EventBusName"
# The command's own temporary rules (watch.py), which take a bulk's events, never its request.
WATCH_RULE_PREFIX = "bulk-watch-"


def bus_of_stack(cloudformation: Any, stack_name: str) -> str:
    """The stack's output EventBusName. (`cloudformation`: a boto3 CloudFormation client.)"""
    return describe_stack(cloudformation, stack_name).output(STACK_BUS_OUTPUT)


def check_bulk_rule(events: EventBridgeClient, bus: str) -> None:
    """Refuse a bus on which no enabled rule takes `Bulk Cancel Requested` (another bus than the
    service's, or a stack without its bulk function): a request there would wait for a report
    that never comes. Without events:ListRules the check is skipped."""
    try:
        pages = events.get_paginator("list_rules").paginate(EventBusName=bus)
        rules = [rule for page in pages for rule in page.get("Rules", [])]
    except ClientError as error:
        code = error.response["Error"].get("Code", "")
        if code == "ResourceNotFoundException":
            raise CommandError(f"bus {bus} does not exist ({where(events)})") from None
        if code in ("AccessDeniedException", "AccessDenied"):
            return
        raise
    for rule in rules:
        if rule.get("State") != "ENABLED" or rule.get("Name", "").startswith(WATCH_RULE_PREFIX):
            continue
        detail_types = json.loads(rule.get("EventPattern") or "{}").get("detail-type", [])
        if BULK_REQUESTED in detail_types:
            return
    raise CommandError(
        f"no enabled rule on bus {bus} takes {BULK_REQUESTED}: it is not the service's bus "
        f"(the stack's output {STACK_BUS_OUTPUT} names it; --stack reads it)"
    )


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
