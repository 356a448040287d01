"""`cancel-service status`: how far behind the stops are, and when they will be done.

For each lane: its messages waiting, in flight (received by the stopper, not yet deleted) and
delayed, and the age of its oldest message; for the bulk lane, the time its backlog needs at the
configured StopExecution rate; for each queue of dead letters, how many it holds.

The age of the oldest message is not an SQS attribute, and reading a message to learn its age
would count as a receive towards the lane's maxReceiveCount (enough `status` calls would move
stops to the dead-letter queue). So it comes from CloudWatch's ApproximateAgeOfOldestMessage,
the latest one-minute datapoint of the last 15 minutes, shown with its time; an empty lane has
none; without a datapoint (a new or idle queue, a local stack, no cloudwatch:GetMetricData) it
is shown as unknown, with the reason.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from cancel_service_cli.queues import Queue, queue_url, read_queues, stack_queue_urls
from cancel_service_cli.stack import aws_session, describe_stack

RATE_PARAMETER = "StopExecutionsPerSecond"
AGE_METRIC = "ApproximateAgeOfOldestMessage"
AGE_LOOKBACK = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class OldestAge:
    seconds: float | None
    measured_at: datetime | None
    # "cloudwatch" (a datapoint), "empty" (nothing queued), or "unknown" (with `reason`)
    source: str
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "measuredAt": self.measured_at.isoformat().replace("+00:00", "Z") if self.measured_at else None,
            "source": self.source,
            **({"reason": self.reason} if self.reason else {}),
        }


def format_duration(seconds: float) -> str:
    """`45s`, `12m 05s`, `3h 20m`, `2d 04h`."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def bulk_lanes(lanes: list[Queue]) -> list[Queue]:
    """The lanes paced at the StopExecution rate: the one whose name says bulk, or the only one
    (a service with a single stop queue paces it)."""
    named = [lane for lane in lanes if "bulk" in lane.name.lower()]
    return named or (lanes if len(lanes) == 1 else [])


def oldest_ages(cloudwatch: Any, lanes: list[Queue], now: datetime) -> dict[str, OldestAge]:
    """The latest ApproximateAgeOfOldestMessage of each lane that holds messages, by queue ARN.
    (`cloudwatch`: a boto3 CloudWatch client.)"""
    ages = {lane.arn: OldestAge(None, None, "empty") for lane in lanes if lane.messages == 0}
    waiting = [lane for lane in lanes if lane.messages > 0]
    if not waiting:
        return ages
    queries: list[Any] = [
        {
            "Id": f"age{index}",
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/SQS",
                    "MetricName": AGE_METRIC,
                    "Dimensions": [{"Name": "QueueName", "Value": lane.name}],
                },
                "Period": 60,
                "Stat": "Maximum",
            },
        }
        for index, lane in enumerate(waiting)
    ]
    try:
        results = cloudwatch.get_metric_data(
            MetricDataQueries=queries,
            StartTime=now - AGE_LOOKBACK,
            EndTime=now,
            ScanBy="TimestampDescending",
        )["MetricDataResults"]
    except (ClientError, BotoCoreError) as error:
        code = error.response["Error"].get("Code", "error") if isinstance(error, ClientError) else "error"
        return ages | {lane.arn: OldestAge(None, None, "unknown", f"CloudWatch: {code}") for lane in waiting}
    by_id = {result["Id"]: result for result in results}
    for index, lane in enumerate(waiting):
        result = by_id.get(f"age{index}", {})
        points = sorted(
            zip(result.get("Timestamps", []), result.get("Values", []), strict=False), reverse=True
        )
        if points:
            measured_at, value = points[0]
            ages[lane.arn] = OldestAge(float(value), measured_at.astimezone(UTC), "cloudwatch")
        else:
            reason = f"no CloudWatch datapoint in the last {AGE_LOOKBACK.seconds // 60} min"
            ages[lane.arn] = OldestAge(None, None, "unknown", reason)
    return ages


def add_parser(commands: Any) -> None:
    status = commands.add_parser(
        "status",
        help="each stop lane's backlog and oldest age, the bulk lane's time left, the dead letters",
        description=(
            "Show each stop lane's messages (waiting, in flight, delayed) and the age of its oldest "
            "(CloudWatch's ApproximateAgeOfOldestMessage, the latest datapoint: reading a message "
            "would count towards its retries), the time the bulk lane's backlog needs at the "
            f"StopExecution rate ({RATE_PARAMETER}), and how many messages each dead-letter queue "
            "holds. Exit 0 when the queues were read, 1 when AWS refused a call, 2 for a refused "
            "command line, 130 on Ctrl-C."
        ),
    )
    where = status.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--stack",
        metavar="NAME",
        help=f"the service's CloudFormation stack: its outputs *QueueUrl, its parameter {RATE_PARAMETER}",
    )
    where.add_argument(
        "--queue",
        metavar="NAME|URL",
        action="append",
        help="a queue to show (repeat for several); a lane's dead-letter queue is added by itself",
    )
    status.add_argument(
        "--rate",
        metavar="PER_SECOND",
        type=_positive_rate,
        help=f"the bulk lane's StopExecution rate (default: the stack's {RATE_PARAMETER})",
    )
    status.add_argument("--json", action="store_true", help="print the status as JSON on stdout")
    status.set_defaults(run=run_status)


def _positive_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive rate")
    return value


def run_status(args: argparse.Namespace) -> int:
    session = aws_session()
    sqs = session.client("sqs")
    rate: float | None = args.rate
    if args.stack is not None:
        stack = describe_stack(session.client("cloudformation"), args.stack)
        urls = stack_queue_urls(stack)
        if rate is None and stack.parameters.get(RATE_PARAMETER):
            rate = float(stack.parameters[RATE_PARAMETER])
    else:
        urls = [queue_url(sqs, name) for name in args.queue]
    queues = read_queues(sqs, urls)
    lanes = [queue for queue in queues if queue.is_lane]
    paced = {lane.arn for lane in bulk_lanes(lanes)}
    ages = oldest_ages(session.client("cloudwatch"), lanes, datetime.now(UTC))
    report = {
        "stack": args.stack,
        "stopExecutionsPerSecond": rate,
        "lanes": [_lane_json(lane, ages[lane.arn], lane.arn in paced, rate) for lane in lanes],
        "deadLetterQueues": [_dead_letters_json(queue, queues) for queue in queues if not queue.is_lane],
    }
    if args.json:
        print(json.dumps(report))
    else:
        for line in status_lines(report):
            print(line)
    return 0


def _lane_json(lane: Queue, age: OldestAge, paced: bool, rate: float | None) -> dict[str, Any]:
    lane_json: dict[str, Any] = {
        "name": lane.name,
        "url": lane.url,
        "waiting": lane.visible,
        "inFlight": lane.in_flight,
        "delayed": lane.delayed,
        "oldestAge": age.as_json(),
        "paced": paced,
    }
    if paced:
        lane_json["timeLeftSeconds"] = lane.messages / rate if rate else None
    return lane_json


def _dead_letters_json(queue: Queue, queues: list[Queue]) -> dict[str, Any]:
    return {
        "name": queue.name,
        "url": queue.url,
        "messages": queue.messages,
        "from": [lane.name for lane in queues if lane.dead_letter_arn == queue.arn],
    }


def status_lines(report: dict[str, Any]) -> list[str]:
    rate = report["stopExecutionsPerSecond"]
    head = f"stack {report['stack']}" if report["stack"] else "queues"
    lines = [head + (f", {RATE_PARAMETER} {rate:g}" if rate else "")]
    width = max(
        [len("dead letters"), *(len(queue["name"]) for queue in report["lanes"] + report["deadLetterQueues"])]
    )
    lines.append(f"  {'lane':<{width}} {'waiting':>8} {'in flight':>9} {'delayed':>7}  oldest")
    for lane in report["lanes"]:
        lines.append(
            f"  {lane['name']:<{width}} {lane['waiting']:>8} {lane['inFlight']:>9} {lane['delayed']:>7}  "
            + _age_text(lane["oldestAge"])
        )
        if lane["paced"]:
            left = lane["timeLeftSeconds"]
            lines.append(
                f"    bulk lane: {format_duration(left)} left at {rate:g} stops/s (at least: retries count)"
                if left is not None
                else f"    bulk lane: time left unknown (give --rate, or --stack for its {RATE_PARAMETER})"
            )
    lines.append(f"  {'dead letters':<{width}} {'messages':>8}")
    for queue in report["deadLetterQueues"]:
        source = f"  from {', '.join(queue['from'])}" if queue["from"] else ""
        lines.append(f"  {queue['name']:<{width}} {queue['messages']:>8}{source}")
    if any(queue["messages"] and queue["from"] for queue in report["deadLetterQueues"]):
        lines.append("  `cancel-service redrive` moves dead letters back to their lane")
    return lines


def _age_text(age: dict[str, Any]) -> str:
    if age["source"] == "empty":
        return "-"
    if age["seconds"] is None:
        return f"unknown ({age['reason']})"
    measured_at = datetime.fromisoformat(age["measuredAt"].replace("Z", "+00:00"))
    return f"{format_duration(age['seconds'])} at {measured_at:%H:%M} UTC (CloudWatch)"
