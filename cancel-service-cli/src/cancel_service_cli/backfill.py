"""`cancel-service age-index backfill`: enter every message processing now in the age index.

Once, after the stack first deploys the age index: the stream tells the index about changes from
then on, and this tells it about the messages that were processing before and have not changed
since (the stuck ones the sweep is for). A parallel Scan of the messages table (the one Scan of
the service, run by an operator, never by a function), keeping processing messages only; each
is entered unless it has an entry (the stream's own entries win). Safe to run again at any time,
and alongside the stream: an entry it writes for a message that finished meanwhile is removed by
the next reading of the index, which checks every entry against its message.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from cancel_service.adapters.age_index import AgeIndex
from cancel_service.models import PROCESSING
from cancel_service_cli.errors import CommandError

STACK_OUTPUTS = {"messages": "MessagesTableName", "ages": "AgeIndexTableName"}
SHARDS_PARAMETER = "AgeIndexShards"


@dataclass(frozen=True)
class Tables:
    messages: str
    ages: str
    shards: int


def tables_of_stack(cloudformation: Any, stack_name: str) -> Tables:
    """The stack's table names (outputs) and shard count (parameter)."""
    try:
        [stack] = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except Exception as error:  # noqa: BLE001 - any refusal ends the command with its reason
        raise CommandError(f"stack {stack_name}: {error}") from None
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    missing = [name for name in STACK_OUTPUTS.values() if name not in outputs]
    if missing or not parameters.get(SHARDS_PARAMETER, "").isdigit():
        raise CommandError(f"stack {stack_name} has no {', '.join(missing) or SHARDS_PARAMETER}")
    return Tables(
        outputs[STACK_OUTPUTS["messages"]], outputs[STACK_OUTPUTS["ages"]], int(parameters[SHARDS_PARAMETER])
    )


def backfill(dynamodb: Any, tables: Tables, segments: int) -> int:
    """Enter every processing message; the number entered or found entered."""
    with ThreadPoolExecutor(max_workers=segments) as executor:
        index = AgeIndex(tables.ages, tables.messages, tables.shards, dynamodb, executor)
        counts = executor.map(
            lambda segment: _segment(dynamodb, index, tables, segment, segments), range(segments)
        )
        return sum(counts)


def _segment(dynamodb: Any, index: AgeIndex, tables: Tables, segment: int, segments: int) -> int:
    count = 0
    pages = dynamodb.get_paginator("scan").paginate(
        TableName=tables.messages,
        Segment=segment,
        TotalSegments=segments,
        FilterExpression="#status = :processing AND attribute_type(updatedAt, :string)",
        ProjectionExpression="id, updatedAt",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":processing": {"S": PROCESSING}, ":string": {"S": "S"}},
    )
    for page in pages:
        for item in page.get("Items", []):
            index.processing(item["id"]["S"], item["updatedAt"]["S"])
            count += 1
    return count
