"""One bulk cancel at scale, end to end in one process against moto, with its invariants checked.

N processing messages (100,000 by default) in many projects, each with an agent execution; one
`olderThanSeconds` bulk under a short time budget per invocation (so it runs as a long chain of
continuations); every continuation delivered to the bulk function as EventBridge would; every
`Message Cancel Requested` event that the stop rule matches fed to the stopper in SQS batches, as
the queue's event source mapping would, records it reports failed delivered again, and records
that keep failing counted as dead letters.

Checked (exit 1 when one fails): every message cancelled exactly once (one cancel event each,
`cancelRequestId` the bulk's id), every agent stop requested exactly once, no record in the
dead-letter queue, one report (every event of the bulk delivered again changes and reports
nothing) with the counts of the table, and StopExecution calls never above
the template's default rate in any one-second window. Printed: wall time, invocations of each
function, StopExecution calls per second at the peak, peak RSS.

The published events are taken from the PutEvents calls rather than through moto's SQS (whose
receive is linear in the queue's length), and the executions do not exist in moto (the stopper
treats that as stopped, after one StopExecution call each): what is measured is the service's
own work and pacing.

Run: .venv/bin/python benchmarks/bulk_scale.py [--messages 100000] [--projects 500]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from event_delivery import Recorder, StopQueue  # noqa: E402
from lambda_context import ACCOUNT, REGION, LambdaContext  # noqa: E402
from moto import mock_aws  # noqa: E402
from moto.events.models import EventPattern  # noqa: E402

from cancel_service.models import utc_timestamp  # noqa: E402
from devstack.lambdas import Invocation  # noqa: E402
from devstack.provision import create_tables  # noqa: E402
from devstack.stream_source import ShardReader, StreamSource  # noqa: E402
from devstack.template import load_template  # noqa: E402

if TYPE_CHECKING:
    from moto.events.utils import EventMessageType

TABLES = {
    "MessagesTable": "scale-messages",
    "ProjectsTable": "scale-projects",
    "StopPaceTable": "scale-stop-pace",
    "BulkStateTable": "scale-bulk-state",
    "AgeIndexTable": "scale-age-index",
}
BUS = "scale-cancel"
AGENT = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:scale-agent"
BULK_ID = "scale-bulk"
# As the bulk test of the suite does: time for five pages of 100 per invocation.
BUDGET_MS, STEP_MS = 60_000, 10_000


def budget_context(function_name: str) -> LambdaContext:
    return LambdaContext(function_name, remaining_ms=BUDGET_MS, step_ms=STEP_MS)


def stop_rule_pattern(template: dict[str, Any]) -> dict[str, Any]:
    """The pattern of the rule that feeds the bulk stop queue, as the template declares it."""
    pattern: dict[str, Any] = template["Resources"]["BulkStopRequestsRule"]["Properties"]["EventPattern"]
    return pattern


def seed(dynamodb: Any, messages: int, projects: int) -> list[str]:
    updated = utc_timestamp(datetime.now(UTC) - timedelta(hours=2))
    ids = [f"m{n:06d}" for n in range(messages)]
    for start in range(0, messages, 25):
        dynamodb.batch_write_item(
            RequestItems={
                TABLES["MessagesTable"]: [
                    {
                        "PutRequest": {
                            "Item": {
                                "id": {"S": message_id},
                                "projectId": {"S": f"p{n % projects:04d}"},
                                "conversationId": {"S": "conv_1"},
                                "status": {"S": "processing"},
                                "executionArn": {"S": execution_arn(message_id)},
                                "createdAt": {"S": updated},
                                "updatedAt": {"S": updated},
                            }
                        }
                    }
                    for n, message_id in enumerate(ids[start : start + 25], start)
                ]
            }
        )
    return ids


def index_ages(dynamodb: Any, template: dict[str, Any]) -> None:
    """The age index as AgeIndexFunction keeps it: every seeded message's stream record delivered
    in order, in the template's batches (before the clock starts: the bulk reads, not this)."""
    from cancel_service.handlers import age_index_stream

    # moto knows the streams endpoint by its region, not botocore's newer endpoint by account.
    streams = boto3.client("dynamodbstreams", config=Config(account_id_endpoint_mode="disabled"))
    stream_arn = dynamodb.describe_table(TableName=TABLES["MessagesTable"])["Table"]["LatestStreamArn"]
    mapping = template["Resources"]["AgeIndexFunction"]["Properties"]["Events"]["MessageChanged"]
    source = StreamSource.of({**mapping["Properties"], "Stream": stream_arn})
    for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        reader = ShardReader(streams, source, shard["ShardId"])
        while batch := reader.batch():
            result = age_index_stream.handler({"Records": batch}, budget_context("AgeIndexFunction"))
            if not reader.done(batch, Invocation("scale", result=result)):
                raise RuntimeError(f"the age index function failed a batch: {result}")


def execution_arn(message_id: str) -> str:
    return AGENT.replace(":stateMachine:", ":execution:") + f":{message_id}"


def busiest_second(instants: list[float]) -> int:
    """The most calls in any one-second window."""
    busiest, window = 0, deque[float]()
    for instant in sorted(instants):
        window.append(instant)
        while instant - window[0] >= 1.0:
            window.popleft()
        busiest = max(busiest, len(window))
    return busiest


def run(messages: int, projects: int, rate: float) -> int:
    template = load_template()
    stop_pattern = EventPattern.load(json.dumps(stop_rule_pattern(template)))
    os.environ.update(
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AWS_ACCESS_KEY_ID="scale",
        AWS_SECRET_ACCESS_KEY="scale",  # noqa: S106 - moto's
        POWERTOOLS_SERVICE_NAME="cancel-service",
        POWERTOOLS_METRICS_NAMESPACE="StopTheAI",
        POWERTOOLS_TRACE_DISABLED="true",
        POWERTOOLS_LOG_LEVEL="WARNING",
        POWERTOOLS_METRICS_DISABLED="true",
        MESSAGES_TABLE=TABLES["MessagesTable"],
        PROJECTS_TABLE=TABLES["ProjectsTable"],
        BULK_STATE_TABLE=TABLES["BulkStateTable"],
        BULK_STATE_RETENTION_SECONDS="259200",
        AGE_INDEX_TABLE=TABLES["AgeIndexTable"],
        AGE_INDEX_SHARDS=str(template["Parameters"]["AgeIndexShards"]["Default"]),
        EVENT_BUS_NAME=BUS,
        AGENT_STATE_MACHINE_ARN=AGENT,
        STOP_EXECUTIONS_PER_SECOND=str(rate),
        STOP_PACE_TABLE=TABLES["StopPaceTable"],
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    recorder = Recorder()
    with mock_aws(), recorder.installed():
        dynamodb = boto3.client("dynamodb")
        create_tables(dynamodb, TABLES, template)
        boto3.client("events").create_event_bus(Name=BUS)
        ids = seed(dynamodb, messages, projects)
        index_ages(dynamodb, template)
        from cancel_service.handlers import bulk_cancel, stop_agent

        started = time.monotonic()
        queue = StopQueue()
        cancel_events: Counter[str] = Counter()
        bulk_invocations = 0
        reports: list[dict[str, Any]] = []
        pending = [bulk_request()]
        delivered: list[dict[str, Any]] = []
        while pending:
            bulk_invocations += 1
            delivered.append(pending.pop())
            bulk_cancel.handler(delivered[-1], budget_context("BulkCancelFunction"))
            pending.extend(recorder.take("Bulk Cancel Requested"))
            reports.extend(event["detail"] for event in recorder.take("Bulk Cancel Completed"))
            cancels = recorder.take("Message Cancel Requested")
            cancel_events.update(event["detail"]["messageId"] for event in cancels)
            # The events are built as EventBridge delivers them (Recorder.take).
            queue.add(
                [event for event in cancels if stop_pattern.matches_event(cast("EventMessageType", event))]
            )
            # A stop batch takes the stopper's whole timeout (60 s), not a bulk's shortened budget.
            queue.drain(
                lambda event: stop_agent.bulk_lane_handler(
                    event, LambdaContext("BulkStopAgentFunction", remaining_ms=60_000)
                )
            )
        wall = time.monotonic() - started
        # Every event of the bulk delivered again (EventBridge's second delivery, a late replay):
        # none may cancel, continue or report anything.
        replayed = 0
        for event in delivered:
            replayed += len(bulk_cancel.handler(event, budget_context("BulkCancelFunction"))["messageIds"])
        replayed += len(recorder.take("Bulk Cancel Requested")) + len(
            recorder.take("Message Cancel Requested")
        )
        reports.extend(event["detail"] for event in recorder.take("Bulk Cancel Completed"))
        outcome = Outcome(
            ids, table_items(dynamodb), cancel_events, recorder.stops, queue, reports, bulk_invocations
        )
        failures = check(outcome, rate)
        if replayed:
            failures.append(f"the bulk's events delivered again did {replayed} things again")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{messages:,} messages in {projects} projects: {wall:.1f} s")
    print(f"invocations: BulkCancelFunction {bulk_invocations}, BulkStopAgentFunction {queue.invocations}")
    busiest = busiest_second([instant for instant, _ in recorder.stops])
    print(f"StopExecution: {len(recorder.stops):,} calls, at most {busiest} in one second (rate {rate:g}/s)")
    print(f"peak RSS {peak_mib:.0f} MiB")
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


def bulk_request() -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Bulk Cancel Requested",
        "source": "app.operator",
        "account": ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [],
        "detail": {"olderThanSeconds": 3600, "bulkId": BULK_ID, "reason": "scale_test"},
    }


def table_items(dynamodb: Any) -> list[dict[str, str]]:
    paginator = dynamodb.get_paginator("scan")
    return [
        {name: value["S"] for name, value in item.items() if "S" in value}
        for page in paginator.paginate(TableName=TABLES["MessagesTable"])
        for item in page["Items"]
    ]


@dataclass
class Outcome:
    ids: list[str]
    items: list[dict[str, str]]
    cancel_events: Counter[str]
    stops: list[tuple[float, str]]
    queue: StopQueue
    reports: list[dict[str, Any]]
    bulk_invocations: int


def check(outcome: Outcome, rate: float) -> list[str]:
    """Every invariant of the run that does not hold."""
    failures = []
    cancelled = [item for item in outcome.items if item["status"] == "cancelled"]
    if len(cancelled) != len(outcome.ids):
        failures.append(f"{len(outcome.ids) - len(cancelled)} messages not cancelled")
    if any(item.get("cancelRequestId") != BULK_ID for item in cancelled):
        failures.append("a message was cancelled by another request than the bulk")
    if set(outcome.cancel_events) != set(outcome.ids) or set(outcome.cancel_events.values()) != {1}:
        failures.append("not exactly one cancel event per message")
    stops = Counter(arn for _, arn in outcome.stops)
    if set(stops) != {execution_arn(message_id) for message_id in outcome.ids} or set(stops.values()) != {1}:
        failures.append("not exactly one StopExecution per agent execution")
    if outcome.queue.dead_letters:
        failures.append(f"{outcome.queue.dead_letters} stop requests in the dead-letter queue")
    if len(outcome.reports) != 1:
        failures.append(f"{len(outcome.reports)} reports instead of one")
    else:
        (report,) = outcome.reports
        expected = {
            "bulkId": BULK_ID,
            "selector": {"olderThanSeconds": 3600},
            "outcome": "finished",
            "selected": len(outcome.ids),
            "cancelled": len(cancelled),
            "alreadyFinished": 0,
            "failed": 0,
            "invocations": outcome.bulk_invocations,
        }
        if {name: report.get(name) for name in expected} != expected:
            failures.append(f"the report {report} does not match the table {expected}")
    if busiest_second([instant for instant, _ in outcome.stops]) > rate:
        failures.append("StopExecution went over its rate")
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--projects", type=int, default=500)
    # StopExecutionsPerSecond for the run: the template's default (20) would make 100,000 stops
    # take 83 minutes; the rule checked is the same at any rate.
    parser.add_argument("--stop-rate", type=float, default=2_000)
    args = parser.parse_args()
    sys.exit(run(args.messages, args.projects, args.stop_rate))


if __name__ == "__main__":
    main()
