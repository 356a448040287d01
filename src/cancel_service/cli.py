"""`cancel-service`: the operator's command line for the cancel service.

`cancel-service bulk` asks for a bulk cancel the way any operator tool may (a `Bulk Cancel
Requested` event on the service's bus), and with `--wait` follows it to its end: a temporary
queue and rule on the bus receive the bulk's continuations (its running totals) and its
`Bulk Cancel Completed` report, and are deleted however the command ends.

Credentials, region and endpoint come from the standard AWS environment (AWS_ENDPOINT_URL
reaches the local stack). No Lambda function imports this module.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import secrets
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from cancel_service.adapters.bulk_events import BULK_COMPLETED, BULK_REQUESTED, BULK_SOURCE
from cancel_service.event_models import BulkByOwner, BulkByProjects, BulkOlderThan

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sqs import SQSClient

PROG = "cancel-service"
# The source of what an operator puts on the bus: anything but app.messages may request a bulk,
# and only the service's own app.messages.bulk may carry a position.
OPERATOR_SOURCE = "app.operator"
# Put by the command itself to learn that its new rule delivers (see ReportWatch.wait_until_live).
PROBE_DETAIL_TYPE = "Bulk Cancel Watch Probe"
STACK_BUS_OUTPUT = "EventBusName"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2  # argparse's own code for a refused command line
EXIT_TIMEOUT = 3
EXIT_INTERRUPTED = 130  # what a shell reports for Ctrl-C

DEFAULT_TIMEOUT = "15m"
# One receive waits at most this long, so the live line and the deadline stay responsive.
RECEIVE_WAIT_SECONDS = 1
# EventBridge applies a new rule within seconds; a rule silent for this long is not working.
RULE_LIVE_TIMEOUT_SECONDS = 30.0
PROBE_EVERY_SECONDS = 2
BAR_WIDTH = 24

_DURATION = re.compile(r"(\d+)([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
# Which option gave each field of the detail, to name it when the service's models refuse it.
_OPTION_OF_FIELD = {
    "projectIds": "--projects",
    "ownerId": "--owner",
    "olderThanSeconds": "--older-than",
    "reason": "--reason",
    "bulkId": "--bulk-id",
}


class CommandError(Exception):
    """The command cannot go on; the message says why (exit 1)."""


# --- the command line ----------------------------------------------------------------------------


def duration_seconds(text: str) -> int:
    """`90s`, `45m`, `2h`, `1d`, or plain seconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 90s, 45m, 2h or 1d")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _positive_duration(text: str) -> int:
    seconds = duration_seconds(text)
    if seconds < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive duration")
    return seconds


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not at least 1")
    return value


def build_parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The command's parser and its `bulk` subcommand's parser (which reports bulk errors)."""
    parser = argparse.ArgumentParser(prog=PROG, description="Operate the cancel service.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    bulk = commands.add_parser(
        "bulk",
        help="cancel the processing messages of projects, of an owner, or stuck for too long",
        description=(
            "Request a bulk cancel on the service's EventBridge bus (source app.operator). "
            "With --wait, follow it until its report; exit 0 when it finished or reached its cap, "
            "1 when it failed, 3 when no report came in time, 2 for a refused command line."
        ),
    )
    selector = bulk.add_mutually_exclusive_group(required=True)
    selector.add_argument("--projects", metavar="ID,ID", help="these projects (comma-separated ids)")
    selector.add_argument("--owner", metavar="USER_ID", help="every project of this Clerk user (user_...)")
    selector.add_argument(
        "--older-than",
        metavar="DURATION",
        type=duration_seconds,
        help="messages processing with no update for this long, in every project (at least 60s)",
    )
    bulk.add_argument("--reason", help="written as cancelReason (default bulk_request)")
    bulk.add_argument("--dry-run", action="store_true", help="count what would be cancelled; change nothing")
    bulk.add_argument("--max-messages", metavar="N", type=_positive_int, help="stop after N were cancelled")
    bulk.add_argument("--bulk-id", metavar="ID", help="1..64 of [A-Za-z0-9_-] (default: a new uuid4 hex)")
    bulk.add_argument("--wait", action="store_true", help="follow the bulk until its report")
    bulk.add_argument(
        "--timeout",
        metavar="DURATION",
        type=_positive_duration,
        default=DEFAULT_TIMEOUT,
        help=f"with --wait: give up waiting after this long (default {DEFAULT_TIMEOUT}); the bulk goes on",
    )
    bulk.add_argument(
        "--json",
        action="store_true",
        help="print the report's JSON detail (without --wait: the request's) on stdout, the rest on stderr",
    )
    bus = bulk.add_mutually_exclusive_group(required=True)
    bus.add_argument("--bus", metavar="NAME", help="the service's event bus")
    bus.add_argument(
        "--stack", metavar="NAME", help=f"the CloudFormation stack whose output {STACK_BUS_OUTPUT}"
    )
    return parser, bulk


def _project_ids(text: str) -> list[str]:
    return [part.strip() for part in text.split(",")] if text.strip() else []


def bulk_detail(args: argparse.Namespace, bulk_id: str) -> dict[str, Any]:
    """The `Bulk Cancel Requested` detail the options ask for, checked by the service's own models
    of it (one definition of the rules). Raises ValueError naming the option at fault."""
    detail: dict[str, Any]
    model: type[BulkByProjects | BulkByOwner | BulkOlderThan]
    if args.projects is not None:
        detail, model = {"projectIds": _project_ids(args.projects)}, BulkByProjects
    elif args.owner is not None:
        detail, model = {"ownerId": args.owner}, BulkByOwner
    else:
        detail, model = {"olderThanSeconds": args.older_than}, BulkOlderThan
    detail["bulkId"] = bulk_id
    if args.reason is not None:
        detail["reason"] = args.reason
    if args.dry_run:
        detail["dryRun"] = True
    if args.max_messages is not None:
        detail["maxMessages"] = args.max_messages
    try:
        model.model_validate(detail)
    except ValidationError as error:
        raise ValueError(_refusal(error)) from None
    return detail


def _refusal(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    field = str(first["loc"][0]) if first["loc"] else ""
    value = first.get("input")
    shown = f"{value}s" if field == "olderThanSeconds" else repr(value)
    return f"{_OPTION_OF_FIELD.get(field, field)}: {shown} refused ({first['msg']})"


# --- AWS ---------------------------------------------------------------------------------------------


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


class ReportWatch:
    """A temporary SQS queue and EventBridge rule that receive one bulk's events: its
    continuations and its report (source app.messages.bulk, this bulkId), and this command's own
    probes. Use as a context manager: whatever was created is deleted on the way out."""

    def __init__(
        self, events: EventBridgeClient, sqs: SQSClient, bus: str, bulk_id: str, log: TextIO
    ) -> None:
        self._events, self._sqs, self._bus, self._bulk_id, self._log = events, sqs, bus, bulk_id, log
        # A random part first, so that two watches of one bulk never share (or delete) a queue,
        # and the name stays within the 64 characters of a rule name.
        self.name = f"bulk-watch-{secrets.token_hex(4)}-{bulk_id}"[:64]
        self._queue_url: str | None = None
        self._rule_created = False
        self._target_added = False

    def __enter__(self) -> ReportWatch:
        try:
            self._create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _create(self) -> None:
        self._queue_url = self._sqs.create_queue(
            QueueName=self.name, Attributes={"MessageRetentionPeriod": "3600"}
        )["QueueUrl"]
        queue_arn = self._sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        pattern = {
            "source": [BULK_SOURCE, OPERATOR_SOURCE],
            "detail": {"bulkId": [self._bulk_id]},
        }
        rule_arn = self._events.put_rule(
            Name=self.name,
            EventBusName=self._bus,
            EventPattern=json.dumps(pattern),
            State="ENABLED",
            Description=f"{PROG} bulk --wait: events of bulk {self._bulk_id} (temporary)",
        )["RuleArn"]
        self._rule_created = True
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
                }
            ],
        }
        self._sqs.set_queue_attributes(QueueUrl=self._queue_url, Attributes={"Policy": json.dumps(policy)})
        self._events.put_targets(
            Rule=self.name, EventBusName=self._bus, Targets=[{"Id": "watch", "Arn": queue_arn}]
        )
        self._target_added = True

    def close(self) -> None:
        """Delete the target, the rule and the queue; each is tried even when another fails, and
        what could not be deleted is named so that it can be deleted by hand."""
        if self._target_added:
            self._delete(
                f"target of rule {self.name}",
                self._events.remove_targets,
                Rule=self.name,
                EventBusName=self._bus,
                Ids=["watch"],
            )
            self._target_added = False
        if self._rule_created:
            self._delete(
                f"rule {self.name} on bus {self._bus}",
                self._events.delete_rule,
                Name=self.name,
                EventBusName=self._bus,
            )
            self._rule_created = False
        if self._queue_url is not None:
            self._delete(f"queue {self._queue_url}", self._sqs.delete_queue, QueueUrl=self._queue_url)
            self._queue_url = None

    def _delete(self, what: str, call: Callable[..., object], **arguments: Any) -> None:
        try:
            call(**arguments)
        except (ClientError, BotoCoreError) as error:
            print(f"{PROG}: could not delete the temporary {what}: {error}", file=self._log)

    def receive(self, wait_seconds: int) -> list[dict[str, Any]]:
        """The events delivered so far (waiting up to `wait_seconds` for the first)."""
        assert self._queue_url is not None, "receive() inside the with block only"
        messages = self._sqs.receive_message(
            QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
        ).get("Messages", [])
        if messages:
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                    for index, message in enumerate(messages)
                ],
            )
        return [json.loads(message["Body"]) for message in messages]

    def wait_until_live(self, timeout: float = RULE_LIVE_TIMEOUT_SECONDS) -> None:
        """Return once the rule delivers. EventBridge may take a moment to apply a new rule; a
        bulk requested before would end unseen when it is short. So the command puts probes
        (its own source, a detail type nothing else consumes) until one arrives."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._events.put_events(
                Entries=[
                    {
                        "EventBusName": self._bus,
                        "Source": OPERATOR_SOURCE,
                        "DetailType": PROBE_DETAIL_TYPE,
                        "Detail": json.dumps({"bulkId": self._bulk_id}),
                    }
                ]
            )
            for _ in range(PROBE_EVERY_SECONDS):
                if any(event.get("detail-type") == PROBE_DETAIL_TYPE for event in self.receive(1)):
                    return
        raise CommandError(f"the temporary rule {self.name} delivered nothing in {timeout:.0f} s")


# --- progress and report -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Progress:
    """A continuation's running totals (`cursor.progress`)."""

    selected: int
    cancelled: int
    already_finished: int
    failed: int
    invocations: int

    @classmethod
    def of(cls, detail: dict[str, Any]) -> Progress | None:
        cursor = detail.get("cursor")
        totals = cursor.get("progress") if isinstance(cursor, dict) else None
        if not isinstance(totals, dict):
            return None

        def count(name: str) -> int:
            value = totals.get(name)
            return value if isinstance(value, int) else 0

        return cls(
            count("selected"),
            count("cancelled"),
            count("alreadyFinished"),
            count("failed"),
            count("invocations"),
        )

    def line(self) -> str:
        return (
            f"{self.cancelled}/{self.selected} cancelled, {self.already_finished} already finished, "
            f"{self.failed} failed, {self.invocations} invocation{'s' if self.invocations != 1 else ''}"
        )


class ProgressDisplay:
    """On a terminal, one line redrawn in place (bar of cancelled / selected so far, spinner);
    elsewhere, one plain line per progress event."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._live = stream.isatty()
        self._spinner = itertools.cycle("|/-\\")
        self._latest: Progress | None = None
        self._started = time.monotonic()
        self._drawn = 0

    @property
    def latest(self) -> Progress | None:
        return self._latest

    def update(self, progress: Progress) -> None:
        # Continuations split over several events may arrive out of order; the line never goes
        # back to an earlier total.
        if self._latest is not None and progress.invocations < self._latest.invocations:
            return
        self._latest = progress
        if not self._live:
            print(f"progress: {progress.line()}", file=self._stream, flush=True)
        self.tick()

    def tick(self) -> None:
        if not self._live:
            return
        elapsed = int(time.monotonic() - self._started)
        if self._latest is None:
            text = f"{next(self._spinner)} waiting for the first progress ({elapsed}s)"
        else:
            share = self._latest.cancelled / self._latest.selected if self._latest.selected else 0.0
            filled = round(BAR_WIDTH * min(share, 1.0))
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            text = f"{next(self._spinner)} [{bar}] {self._latest.line()} ({elapsed}s)"
        self._stream.write("\r" + text.ljust(self._drawn))
        self._stream.flush()
        self._drawn = len(text)

    def close(self) -> None:
        """End the live line, so that what follows starts on a line of its own."""
        if self._live and self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = 0


def follow(watch: ReportWatch, timeout_seconds: float, display: ProgressDisplay) -> dict[str, Any] | None:
    """The bulk's report, showing its progress meanwhile; None when none came in time."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        for event in watch.receive(RECEIVE_WAIT_SECONDS):
            detail = event.get("detail")
            if event.get("source") != BULK_SOURCE or not isinstance(detail, dict):
                continue  # this command's own request and probes
            if event.get("detail-type") == BULK_COMPLETED:
                return detail
            progress = Progress.of(detail)
            if progress is not None:
                display.update(progress)
        display.tick()
    return None


def describe_selector(selector: Any) -> str:
    if not isinstance(selector, dict):
        return json.dumps(selector)
    if "projectIds" in selector:
        return "projects " + ", ".join(map(str, selector["projectIds"]))
    if "ownerId" in selector:
        return f"every project of {selector['ownerId']}"
    if "olderThanSeconds" in selector:
        return f"processing with no update for {selector['olderThanSeconds']} s"
    return json.dumps(selector)


def _took(report: dict[str, Any]) -> str:
    try:
        started = datetime.fromisoformat(str(report["startedAt"]).replace("Z", "+00:00"))
        finished = datetime.fromisoformat(str(report["finishedAt"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return ""
    return f" in {(finished - started).total_seconds():.1f} s"


def report_lines(report: dict[str, Any]) -> Iterator[str]:
    dry_run = report.get("dryRun") is True
    yield (
        f"bulk {report.get('bulkId')} {report.get('outcome')}{_took(report)}"
        + (" (dry run: nothing was changed)" if dry_run else "")
    )
    rows = [
        ("selection", describe_selector(report.get("selector"))),
        ("selected", report.get("selected")),
        ("cancelled", report.get("cancelled")),
        ("already finished", report.get("alreadyFinished")),
        ("failed", report.get("failed")),
        ("invocations", report.get("invocations")),
        ("started", report.get("startedAt")),
        ("finished", report.get("finishedAt")),
    ]
    if report.get("error"):
        rows.append(("error", report["error"]))
    for label, value in rows:
        yield f"  {label:<17} {value}"


def exit_code_of(report: dict[str, Any]) -> int:
    """0 when the bulk finished or reached its cap (dry runs included), 1 otherwise."""
    return EXIT_OK if report.get("outcome") in ("finished", "capped") else EXIT_FAILED


# --- main ----------------------------------------------------------------------------------------------


def run_bulk(args: argparse.Namespace, detail: dict[str, Any]) -> int:
    # With --json, stdout carries the JSON alone, so that it can be piped.
    human = sys.stderr if args.json else sys.stdout
    session = boto3.session.Session()
    bus = args.bus or bus_of_stack(session.client("cloudformation"), args.stack)
    events = session.client("events")
    bulk_id = detail["bulkId"]
    if not args.wait:
        put_bulk_request(events, bus, detail)
        print(f"bulk {bulk_id} requested on bus {bus} ({describe_selector(detail)})", file=human)
        if args.json:
            print(json.dumps(detail))
        return EXIT_OK
    with ReportWatch(events, session.client("sqs"), bus, bulk_id, sys.stderr) as watch:
        watch.wait_until_live()
        put_bulk_request(events, bus, detail)
        print(f"bulk {bulk_id} requested on bus {bus} ({describe_selector(detail)}); waiting", file=human)
        display = ProgressDisplay(sys.stderr)
        try:
            report = follow(watch, args.timeout, display)
        except KeyboardInterrupt:
            display.close()
            print(f"{PROG}: interrupted; bulk {bulk_id} goes on in the service", file=sys.stderr)
            return EXIT_INTERRUPTED
        display.close()
    if report is None:
        latest = display.latest
        print(
            f"{PROG}: no report of bulk {bulk_id} within {args.timeout} s; it may still be running"
            + (f" (last progress: {latest.line()})" if latest else ""),
            file=sys.stderr,
        )
        return EXIT_TIMEOUT
    for line in report_lines(report):
        print(line, file=human)
    if args.json:
        print(json.dumps(report))
    return exit_code_of(report)


def main(argv: Sequence[str] | None = None) -> int:
    parser, bulk_parser = build_parser()
    args = parser.parse_args(argv)
    bulk_id = args.bulk_id if args.bulk_id is not None else uuid.uuid4().hex
    try:
        detail = bulk_detail(args, bulk_id)
    except ValueError as refusal:
        bulk_parser.error(str(refusal))  # exits with EXIT_USAGE; nothing was sent
    try:
        return run_bulk(args, detail)
    except CommandError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
    except (ClientError, BotoCoreError) as error:
        print(f"{PROG}: AWS error: {error}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
