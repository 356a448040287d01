"""After a bulk's report: its agent stops. The bulk cancels its messages and publishes one cancel
event each; their executions are stopped from the bulk lane, paced at the stack's
StopExecutionsPerSecond, so a bulk of thousands ends minutes before its agents do. The lane is
shared (every bulk's and the stale sweep's stops), so what it holds is an upper bound on this
bulk's."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from cancel_service_cli.errors import CommandError
from cancel_service_cli.queues import read_queues, stack_queue_urls
from cancel_service_cli.status import RATE_PARAMETER, bulk_lanes, format_duration

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from cancel_service_cli.stack import Stack

STOPS_POLL_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class LaneBacklog:
    messages: int  # waiting, in flight and delayed
    rate: float | None  # stops a second, the stack's parameter

    def line(self) -> str:
        if not self.messages:
            return "none queued in the bulk lane: every agent stop was asked of Step Functions"
        left = (
            f", about {format_duration(self.messages / self.rate)} at {self.rate:g} a second"
            if self.rate
            else ""
        )
        return f"{self.messages} still queued in the bulk lane (every bulk's and the sweep's){left}"


def bulk_lane_backlog(sqs: SQSClient, stack: Stack) -> LaneBacklog:
    queues = read_queues(sqs, stack_queue_urls(stack))
    lanes = bulk_lanes([queue for queue in queues if queue.is_lane])
    if not lanes:
        raise CommandError(f"stack {stack.name} names no bulk stop lane in its outputs")
    try:
        rate: float | None = float(stack.parameters.get(RATE_PARAMETER, ""))
    except ValueError:
        rate = None
    return LaneBacklog(sum(lane.messages for lane in lanes), rate)


def wait_until_stopped(sqs: SQSClient, stack: Stack, give_up_at: float, stream: TextIO) -> bool:
    """Show the bulk lane's backlog as it drains; True once it is empty, False at `give_up_at`
    (time.monotonic()) with stops still queued."""
    shown: LaneBacklog | None = None
    while True:
        backlog = bulk_lane_backlog(sqs, stack)
        if backlog != shown:
            print(f"agent stops: {backlog.line()}", file=stream, flush=True)
            shown = backlog
        if not backlog.messages:
            return True
        if time.monotonic() + STOPS_POLL_SECONDS > give_up_at:
            return False
        time.sleep(STOPS_POLL_SECONDS)
