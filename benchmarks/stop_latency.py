"""Time from a user's Stop to all its agent executions ABORTED, on the local stack, idle and with a
bulk backlog: HTTP API -> CancelFunction -> cancel bus -> user stop rule -> user stop queue ->
UserStopAgentFunction -> StopExecution, while the bulk lane drains its own queue at its pace.

Each round makes a project of the demo user with N processing messages, each with a RUNNING
stand-in agent execution, sends the Stop over HTTP and waits until every execution of the
cancelled messages is ABORTED. The time runs from the moment the Stop is sent (the user pressing
it) to the moment moto marked the last of them ABORTED, read where moto records it (its server
runs in this process) rather than polled: a poll would add up to its interval, and its own load
on moto, to a path of tens of milliseconds. The time from the HTTP 200 is printed too, but the
ratio is not taken on it: the stops often land before the answer is back (a time below zero).

Rounds alternate: idle (the bulk stop queue purged, and the stops the bulk lane had received
made), then under a backlog (the bulk stop queue filled with BACKLOG stops of `system:bulk`, as
the bulk rule delivers them, of executions that are gone, so that the bulk lane calls
StopExecution at the template's default rate all along; the Stop is sent once the lane has been
draining it for two seconds, as it would a backlog that came in over minutes). The backlog is
written into the local SQS directly: moto's SendMessage takes time in proportion to the queue's
depth, so ten thousand sends would take most of an hour.

Lambda keeps a lane in use warm, and a cold start (a second or more here) would hide what a
backlog does: before the timed rounds, the user lane gets as many containers as its event source
runs batches at once, each having made a stop (its clients made), and a round of each situation
per size is not counted. Cold starts during the timed rounds are counted and printed all the same.

Printed: per size, p50 and p99 of each situation over the rounds, the ratio backlog / idle, and
p50 / p99 from the HTTP 200 to the last agent ABORTED; then how many bulk stops of the backlogs
the bulk lane made (deleted) meanwhile, and the cold starts of each function during the timed
rounds.

Run: .venv/bin/python benchmarks/stop_latency.py [--sizes 2,10,100] [--rounds 20] [--backlog 10000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from devstack.constants import ACCOUNT, CANCEL_PATH, REGION
from devstack.demo import DEMO_PROJECT, DEMO_USER, iso_now
from devstack.sqs_source import SqsSource, sqs_record
from devstack.stack import DevStack, StackOptions

USER_LANE = "UserStopAgentFunction"
GIVE_UP_SECONDS = 60.0
QUIET_SECONDS = 1.0
DRAINING_SECONDS = 2.0


@dataclass
class Samples:
    """Per situation, each Stop's milliseconds from sent to the last agent ABORTED, and from its
    HTTP 200 to then (below zero when every agent was stopped before the answer was back)."""

    idle: list[float] = field(default_factory=list)
    backlog: list[float] = field(default_factory=list)
    idle_after_answer: list[float] = field(default_factory=list)
    backlog_after_answer: list[float] = field(default_factory=list)


class AbortedAt:
    """When moto marked each execution ABORTED, in `time.perf_counter()` seconds.

    moto sets an execution's status when its worker ends, after StopExecution has answered; this
    records that moment, in the local stack's moto (which runs in this process)."""

    def __init__(self) -> None:
        self._moments: dict[str, float] = {}
        self._changed = threading.Condition()

    def install(self) -> None:
        from moto.stepfunctions.parser.api import ExecutionStatus
        from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication

        reflect = BaseExecutionWorkerCommunication._reflect_execution_status

        def reflect_and_record(communication: BaseExecutionWorkerCommunication) -> None:
            reflect(communication)  # type: ignore[no-untyped-call]
            execution = communication.execution
            if execution.exec_status == ExecutionStatus.ABORTED:
                with self._changed:
                    self._moments[execution.exec_arn] = time.perf_counter()
                    self._changed.notify_all()

        BaseExecutionWorkerCommunication._reflect_execution_status = reflect_and_record  # type: ignore[method-assign]

    def last(self, executions: set[str], timeout: float) -> float | None:
        """The moment the last of `executions` was ABORTED; None if one was not within `timeout`."""
        with self._changed:
            if not self._changed.wait_for(lambda: executions <= self._moments.keys(), timeout):
                return None
            return max(self._moments[arn] for arn in executions)


class ColdStarts:
    """Init lines of the functions' containers, counted while `counting` is set."""

    def __init__(self) -> None:
        self.counting = False
        self.by_function: Counter[str] = Counter()

    def see(self, line: str) -> None:
        if self.counting and "Init Duration" in line:
            self.by_function[line[1 : line.index("]")]] += 1


def percentile(samples: list[float], rank: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[rank - 1]


class Bench:
    def __init__(self, stack: DevStack, backlog: int, aborted: AbortedAt) -> None:
        self.stack = stack
        self.backlog = backlog
        self.aborted = aborted
        self.sfn = stack.client("stepfunctions")
        self.dynamodb = stack.client("dynamodb")
        self.agent = stack.agent_state_machine
        # The ARN prefix of the agent's executions: stops of names never started find them gone.
        self.gone = self.agent.replace(":stateMachine:", ":execution:")
        bulk_queue = stack.template.physical_name("BulkStopRequestsQueue")
        self.bulk_queue_name = bulk_queue
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

    def one_round(self, size: int) -> tuple[float, float]:
        """Milliseconds to the last of the Stop's executions ABORTED: from the Stop sent, and
        from its HTTP 200."""
        project, executions = self.project_with_running_agents(size)
        pressed = time.perf_counter()
        cancelled = stop_over_http(self.stack, project)
        answered = time.perf_counter()
        if len(cancelled) != size:
            raise RuntimeError(f"the Stop cancelled {len(cancelled)} of {size} messages")
        last_aborted = self.aborted.last(executions, GIVE_UP_SECONDS)
        if last_aborted is None or executions & self.running():
            raise RuntimeError(f"executions of the Stop not ABORTED after {GIVE_UP_SECONDS} s")
        return (last_aborted - pressed) * 1000, (last_aborted - answered) * 1000

    def warm_user_lane(self) -> None:
        """As many warm containers as the user lane runs batches at once, each having made a
        stop (of an execution that is gone, which succeeds quietly), so its clients exist."""
        stopper = self.stack.functions[USER_LANE]
        (source,) = (
            SqsSource.of(event.properties, queue_url="") for event in stopper.events if event.type == "SQS"
        )
        pool = self.stack.pools[USER_LANE]

        def stop_one(index: int) -> None:
            event = stop_event(f"{self.gone}:warm-{uuid.uuid4().hex}", f"warm{index:03d}", DEMO_USER)
            message = {"MessageId": str(uuid.uuid4()), "ReceiptHandle": "warm", "Body": json.dumps(event)}
            invocation = pool.invoke({"Records": [sqs_record(message, source.queue_arn)]})
            if invocation.failed:
                raise RuntimeError(f"warming {USER_LANE} failed: {invocation.error}")

        with ThreadPoolExecutor(source.maximum_concurrency) as invocations:
            list(invocations.map(stop_one, range(source.maximum_concurrency)))

    def bulk_queued(self) -> int:
        """Bulk stops not yet made: waiting, or received by the bulk lane and not yet deleted. Read
        in moto's queue: GetQueueAttributes would hold moto for a second and more over 10,000."""
        return len(self._bulk_queue()._messages)

    def _bulk_queue(self) -> Any:
        """moto's bulk stop queue (the local stack's moto server runs in this process)."""
        from moto.sqs.models import sqs_backends

        return sqs_backends[ACCOUNT][REGION].get_queue(self.bulk_queue_name)

    def fill_bulk_queue(self) -> None:
        """BACKLOG bulk stops waiting in the bulk stop queue, as the bulk rule delivers them."""
        from moto.sqs.models import Message

        queue = self._bulk_queue()
        for index in range(self.backlog):
            body = json.dumps(
                stop_event(f"{self.gone}:bulk-{uuid.uuid4().hex}", f"bulk{index:06d}", "system:bulk")
            )
            message = Message(str(uuid.uuid4()), body)
            message.mark_sent()
            queue.add_message(message)

    def purge_bulk_queue(self) -> None:
        """What is left of the backlog, gone (moto allows one PurgeQueue a minute)."""
        queue = self._bulk_queue()
        with queue._messages_lock:  # moto's queue, as its PurgeQueue empties it
            queue._messages.clear()

    def under_backlog(self, size: int) -> tuple[float, float]:
        """A round once the bulk lane drains the backlog at its pace, as it would a backlog that
        came in over minutes; not in the burst of its pollers waking up to a queue just filled."""
        started = time.perf_counter()  # the lane takes stops while the queue fills
        self.fill_bulk_queue()
        time.sleep(DRAINING_SECONDS)
        if self.bulk_queued() == self.backlog:
            raise RuntimeError(f"the bulk lane made no stop in {DRAINING_SECONDS} s of backlog")
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


def stop_event(execution_arn: str, message_id: str, requested_by: str) -> dict[str, Any]:
    """The cancel event a stop rule delivers for one message, requested by a user or `system:`."""
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
            "requestedBy": requested_by,
            "reason": "bulk_request" if requested_by.startswith("system:") else "user_request",
            "requestedAt": iso_now(),
            "requestId": "bench-bulk",
        },
    }


def log_trouble(line: str) -> None:
    """The local stack's lines that tell of trouble (a failed invocation, a timeout), on stderr."""
    if "timed out" in line or '"level":"ERROR"' in line or line.lstrip().startswith("!"):
        print(line, file=sys.stderr, flush=True)


def cold_starts_line(cold_starts: ColdStarts) -> str:
    counts = ", ".join(f"{function} {count}" for function, count in sorted(cold_starts.by_function.items()))
    return f"cold starts during the timed rounds: {counts or 'none'}"


def row(size: int, samples: Samples) -> str:
    idle50, idle99 = percentile(samples.idle, 50), percentile(samples.idle, 99)
    back50, back99 = percentile(samples.backlog, 50), percentile(samples.backlog, 99)
    after_idle, after_backlog = samples.idle_after_answer, samples.backlog_after_answer
    return (
        f"| {size} | {idle50:.0f} | {idle99:.0f} | {back50:.0f} | {back99:.0f} "
        f"| {back50 / idle50:.2f} | {back99 / idle99:.2f} "
        f"| {percentile(after_idle, 50):.0f} / {percentile(after_idle, 99):.0f} "
        f"| {percentile(after_backlog, 50):.0f} / {percentile(after_backlog, 99):.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2,10,100", help="messages per Stop, comma-separated")
    parser.add_argument("--rounds", type=int, default=20, help="Stops measured per size and situation")
    parser.add_argument("--backlog", type=int, default=10_000, help="bulk stops queued in the backlog rounds")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]

    aborted, cold_starts = AbortedAt(), ColdStarts()

    def log(line: str) -> None:
        cold_starts.see(line)
        log_trouble(line)

    options = StackOptions(api_port=0, clerk_port=0, aws_port=0, seed=False)
    with DevStack(options, log=log) as stack:
        aborted.install()
        rate = stack.template.parameters["StopExecutionsPerSecond"]
        bench = Bench(stack, args.backlog, aborted)
        print(f"Stop -> every agent ABORTED (ms from the Stop sent), {args.rounds} Stops per cell;")
        print(f"backlog: {args.backlog:,} bulk stops queued, bulk lane at StopExecutionsPerSecond={rate}\n")
        print(
            "| messages | idle p50 | idle p99 | backlog p50 | backlog p99 | ratio p50 | ratio p99 "
            "| after the 200, idle p50 / p99 | after the 200, backlog p50 / p99 |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
        bench.warm_user_lane()
        for size in sizes:
            # Not counted: the containers of the other functions and of the bulk lane start here.
            bench.one_round(size)
            bench.under_backlog(size)
            samples = Samples()
            cold_starts.counting = True
            for _ in range(args.rounds):
                idle, idle_after_answer = bench.one_round(size)
                backlog, backlog_after_answer = bench.under_backlog(size)
                samples.idle.append(idle)
                samples.backlog.append(backlog)
                samples.idle_after_answer.append(idle_after_answer)
                samples.backlog_after_answer.append(backlog_after_answer)
            cold_starts.counting = False
            print(row(size, samples), flush=True)

    per_second = bench.bulk_stops_made / bench.backlog_seconds if bench.backlog_seconds else 0.0
    print(
        f"\nbulk lane meanwhile: {bench.bulk_stops_made:,} bulk stops taken in {bench.backlog_seconds:.0f} s"
        f" of backlog rounds ({per_second:.1f} per second)"
    )
    print(cold_starts_line(cold_starts))


if __name__ == "__main__":
    main()
