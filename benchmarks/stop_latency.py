"""Time from a user's Stop to all its agent executions ABORTED, on the local stack, idle and with a
bulk backlog: HTTP API -> CancelFunction -> cancel bus -> user stop rule -> user stop queue ->
UserStopAgentFunction -> StopExecution, while the bulk lane drains its own queue at its pace.

Each round makes a project of the demo user with N processing messages, each with a RUNNING
stand-in agent execution, sends the Stop over HTTP and polls Step Functions every 10 ms until
every execution of the cancelled messages is ABORTED; the time is counted from the HTTP 200.
Rounds alternate: idle (the bulk stop queue purged, and the stops the bulk lane had received
made), then under a backlog (the bulk stop queue filled with BACKLOG stops of `system:bulk`, as
the bulk rule delivers them, of executions that are gone, so that the bulk lane calls
StopExecution at the template's default rate all along). The backlog is written into the local
SQS directly: moto's SendMessage takes time in proportion to the queue's depth, so ten thousand
sends would take most of an hour. A first round of each size warms the containers up and is not
counted.

Printed: per size, p50 and p99 of each situation over the rounds, and the ratio backlog / idle;
then how many bulk stops of the backlogs the bulk lane made (deleted) meanwhile.

Run: .venv/bin/python benchmarks/stop_latency.py [--sizes 2,10,100] [--rounds 20] [--backlog 10000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

from devstack.constants import ACCOUNT, CANCEL_PATH, REGION
from devstack.demo import DEMO_PROJECT, DEMO_USER, iso_now
from devstack.stack import DevStack, StackOptions

POLL_SECONDS = 0.01
GIVE_UP_SECONDS = 60.0
QUIET_SECONDS = 1.0


@dataclass
class Samples:
    idle: list[float] = field(default_factory=list)
    backlog: list[float] = field(default_factory=list)


def percentile(samples: list[float], rank: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[rank - 1]


class Bench:
    def __init__(self, stack: DevStack, backlog: int) -> None:
        self.stack = stack
        self.backlog = backlog
        self.sfn = stack.client("stepfunctions")
        self.dynamodb = stack.client("dynamodb")
        self.sqs = stack.client("sqs")
        self.agent = stack.agent_state_machine
        bulk_queue = stack.template.physical_name("BulkStopRequestsQueue")
        self.bulk_queue_name = bulk_queue
        self.bulk_queue_url = f"{stack.aws_url}/{ACCOUNT}/{bulk_queue}"
        self.bulk_stops_made = 0
        self.backlog_seconds = 0.0

    def project_with_running_agents(self, size: int) -> tuple[str, set[str]]:
        project = f"bench-{uuid.uuid4().hex[:12]}"
        self.dynamodb.put_item(
            TableName=self.stack.table_name("ProjectsTable"),
            Item={"id": {"S": project}, "ownerId": {"S": DEMO_USER}},
        )
        executions = set()
        for index in range(size):
            message_id = f"{project}-m{index:03d}"
            execution = self.sfn.start_execution(stateMachineArn=self.agent, name=message_id, input="{}")
            arn = execution["executionArn"]
            executions.add(arn)
            now = iso_now()
            self.dynamodb.put_item(
                TableName=self.stack.table_name("MessagesTable"),
                Item={
                    "id": {"S": message_id},
                    "projectId": {"S": project},
                    "conversationId": {"S": f"conv_{index % 3}"},
                    "status": {"S": "processing"},
                    "executionArn": {"S": arn},
                    "createdAt": {"S": now},
                    "updatedAt": {"S": now},
                },
            )
        return project, executions

    def running(self) -> set[str]:
        pages = self.sfn.get_paginator("list_executions").paginate(
            stateMachineArn=self.agent, statusFilter="RUNNING"
        )
        return {execution["executionArn"] for page in pages for execution in page["executions"]}

    def one_round(self, size: int) -> float:
        """Milliseconds from the Stop's 200 to the last of its executions ABORTED."""
        project, waiting = self.project_with_running_agents(size)
        cancelled = stop_over_http(self.stack, project)
        answered = time.perf_counter()
        if len(cancelled) != size:
            raise RuntimeError(f"the Stop cancelled {len(cancelled)} of {size} messages")
        while waiting and time.perf_counter() - answered < GIVE_UP_SECONDS:
            waiting &= self.running()
            if waiting:
                time.sleep(POLL_SECONDS)
        if waiting:
            raise RuntimeError(f"{len(waiting)} executions not ABORTED after {GIVE_UP_SECONDS} s")
        return (time.perf_counter() - answered) * 1000

    def bulk_queued(self) -> int:
        """Bulk stops not yet made: waiting, or received by the bulk lane and not yet deleted."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.bulk_queue_url, AttributeNames=names)
        return sum(int(attributes["Attributes"][name]) for name in names)

    def _bulk_queue(self) -> Any:
        """moto's bulk stop queue (the local stack's moto server runs in this process)."""
        from moto.sqs.models import sqs_backends

        return sqs_backends[ACCOUNT][REGION].get_queue(self.bulk_queue_name)

    def fill_bulk_queue(self) -> None:
        """BACKLOG bulk stops waiting in the bulk stop queue, as the bulk rule delivers them."""
        from moto.sqs.models import Message

        queue = self._bulk_queue()
        gone = self.agent.replace(":stateMachine:", ":execution:")
        for index in range(self.backlog):
            body = json.dumps(bulk_stop_event(f"{gone}:bulk-{uuid.uuid4().hex}", f"bulk{index:06d}"))
            message = Message(str(uuid.uuid4()), body)
            message.mark_sent()
            queue.add_message(message)

    def purge_bulk_queue(self) -> None:
        """What is left of the backlog, gone (moto allows one PurgeQueue a minute)."""
        queue = self._bulk_queue()
        with queue._messages_lock:  # moto's queue, as its PurgeQueue empties it
            queue._messages.clear()

    def under_backlog(self, size: int) -> float:
        self.fill_bulk_queue()
        started = time.perf_counter()
        sample = self.one_round(size)
        left = self.bulk_queued()
        self.bulk_stops_made += self.backlog - left
        self.backlog_seconds += time.perf_counter() - started
        if left < self.backlog // 2:
            raise RuntimeError(f"the backlog ran low ({left} left): the round did not run under it")
        self.purge_bulk_queue()
        self.wait_until_bulk_lane_quiet()
        return sample

    def wait_until_bulk_lane_quiet(self) -> None:
        """Until the bulk lane has made the stops it had received before the purge (up to a batch
        per poller, paced): its pace has let no stop through for a second. The idle round that
        follows is idle."""
        deadline = time.monotonic() + GIVE_UP_SECONDS
        while time.monotonic() < deadline:
            item = self.dynamodb.get_item(
                TableName=self.stack.table_name("StopPaceTable"),
                Key={"lane": {"S": "bulk"}},
                ConsistentRead=True,
            ).get("Item")
            next_call_at = int(item["nextCallAt"]["N"]) / 1_000_000 if item else 0.0
            if time.time() - next_call_at > QUIET_SECONDS:
                return
            time.sleep(0.1)
        raise RuntimeError(f"the bulk lane still stopping {GIVE_UP_SECONDS} s after the purge")


def stop_over_http(stack: DevStack, project: str = DEMO_PROJECT) -> list[str]:
    """The Stop the demo user sends; returns the ids of the messages it cancelled."""
    request = urllib.request.Request(  # noqa: S310 - the local stack on loopback
        f"{stack.origin}{CANCEL_PATH}",
        data=json.dumps({"projectId": project}).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {stack.mint(DEMO_USER)}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        answer = json.loads(response.read())
    message_ids: list[str] = answer["messageIds"]
    return message_ids


def bulk_stop_event(execution_arn: str, message_id: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Message Cancel Requested",
        "source": "app.messages",
        "account": ACCOUNT,
        "time": iso_now()[:19] + "Z",
        "region": REGION,
        "resources": [],
        "detail": {
            "messageId": message_id,
            "projectId": "bulk-project",
            "conversationId": "conv_bulk",
            "executionArn": execution_arn,
            "requestedBy": "system:bulk",
            "reason": "bulk_request",
            "requestedAt": iso_now(),
            "requestId": "bench-bulk",
        },
    }


def log_trouble(line: str) -> None:
    """The local stack's lines that tell of trouble (a failed invocation, a timeout), on stderr."""
    if "timed out" in line or '"level":"ERROR"' in line or line.lstrip().startswith("!"):
        print(line, file=sys.stderr, flush=True)


def row(size: int, samples: Samples) -> str:
    idle50, idle99 = percentile(samples.idle, 50), percentile(samples.idle, 99)
    back50, back99 = percentile(samples.backlog, 50), percentile(samples.backlog, 99)
    return (
        f"| {size} | {idle50:.0f} | {idle99:.0f} | {back50:.0f} | {back99:.0f} "
        f"| {back50 / idle50:.2f} | {back99 / idle99:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2,10,100", help="messages per Stop, comma-separated")
    parser.add_argument("--rounds", type=int, default=20, help="Stops measured per size and situation")
    parser.add_argument("--backlog", type=int, default=10_000, help="bulk stops queued in the backlog rounds")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]

    options = StackOptions(api_port=0, clerk_port=0, aws_port=0, seed=False)
    with DevStack(options, log=log_trouble) as stack:
        rate = stack.template.parameters["StopExecutionsPerSecond"]
        bench = Bench(stack, args.backlog)
        print(f"Stop -> every agent ABORTED (ms from the HTTP 200), {args.rounds} Stops per cell;")
        print(f"backlog: {args.backlog:,} bulk stops queued, bulk lane at StopExecutionsPerSecond={rate}\n")
        print("| messages | idle p50 | idle p99 | backlog p50 | backlog p99 | ratio p50 | ratio p99 |")
        print("|---:|---:|---:|---:|---:|---:|---:|", flush=True)
        bench.one_round(min(sizes))  # warm-up: the first container of each function starts here
        for size in sizes:
            bench.one_round(size)  # warm-up: the containers this size needs start here
            samples = Samples()
            for _ in range(args.rounds):
                samples.idle.append(bench.one_round(size))
                samples.backlog.append(bench.under_backlog(size))
            print(row(size, samples), flush=True)

    per_second = bench.bulk_stops_made / bench.backlog_seconds if bench.backlog_seconds else 0.0
    print(
        f"\nbulk lane meanwhile: {bench.bulk_stops_made:,} bulk stops taken in {bench.backlog_seconds:.0f} s"
        f" of backlog rounds ({per_second:.1f} per second)"
    )


if __name__ == "__main__":
    main()
