"""`cancel-service`: the operator's command line for the cancel service.

`cancel-service bulk` asks for a bulk cancel the way any operator tool may (a `Bulk Cancel
Requested` event on the service's bus), and with `--wait` follows it to its end: a temporary
queue and rule on the bus receive the bulk's continuations (its running totals) and its
`Bulk Cancel Completed` report, and are deleted however the command ends (Ctrl-C, SIGTERM and
SIGHUP included). The report taken is the one of the request sent: its bulkId, dry run and
selector, started after the request was sent. `cancel-service status` shows the stop lanes'
backlogs and the dead letters; `cancel-service redrive` puts dead letters back on their lane.

Credentials, region and endpoint come from the standard AWS environment (AWS_ENDPOINT_URL
reaches the local stack). No Lambda function imports this package.

- `arguments`: the options and the request detail they ask for, checked before anything is sent;
- `request`: the bus, and putting the request on it;
- `watch`: the temporary queue and rule that receive the bulk's events;
- `progress`: following the bulk to its report, showing its running totals;
- `report`: the report as the operator reads it;
- `stack`, `queues`: the service's stack (outputs, parameters) and its queues, lanes or dead letters;
- `status`, `redrive`: those two commands;
- `backfill`: `cancel-service backfill-age-index`, the age index's one-off backfill.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import TypeAdapter

from cancel_service.event_models import BulkReport, BulkSelection
from cancel_service.models import utc_timestamp
from cancel_service_cli import redrive, status
from cancel_service_cli.arguments import PROG, build_parser, bulk_detail
from cancel_service_cli.backfill import Tables, backfill, tables_of_stack
from cancel_service_cli.progress import ProgressDisplay, SentRequest, follow
from cancel_service_cli.report import describe_selector, report_lines
from cancel_service_cli.request import CommandError, bus_of_stack, put_bulk_request
from cancel_service_cli.watch import ReportWatch

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2  # argparse's own code for a refused command line
EXIT_TIMEOUT = 3
EXIT_INTERRUPTED = 130  # what a shell reports for Ctrl-C
_SELECTION: TypeAdapter[BulkSelection] = TypeAdapter(BulkSelection)


def exit_code_of(report: BulkReport) -> int:
    """0 when the bulk finished or reached its cap (dry runs included), 1 otherwise."""
    return EXIT_OK if report.outcome in ("finished", "capped") else EXIT_FAILED


def _sent(detail: dict[str, Any]) -> SentRequest:
    """The request about to be sent, as its report will name it (the service's own selector)."""
    selection = _SELECTION.validate_python(detail)
    return SentRequest(selection.bulk_id or "", selection.dry_run, selection.selector(), utc_timestamp())


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
        sent = _sent(detail)
        put_bulk_request(events, bus, detail)
        print(f"bulk {bulk_id} requested on bus {bus} ({describe_selector(detail)}); waiting", file=human)
        display = ProgressDisplay(sys.stderr)
        try:
            report = follow(watch, args.timeout, display, sent, sys.stderr)
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
        print(report.model_dump_json(by_alias=True, exclude_none=True))
    return exit_code_of(report)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def run_backfill(args: argparse.Namespace) -> int:
    session = boto3.session.Session()
    if args.stack:
        tables = tables_of_stack(session.client("cloudformation"), args.stack)
    else:
        tables = Tables(args.messages_table, args.age_index_table, args.shards)
    entered = backfill(session.client("dynamodb"), tables, args.segments)
    print(f"{entered} processing messages in the age index {tables.ages}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    # A terminal closed (SIGHUP) or a supervisor stopping the command (SIGTERM) end it as Ctrl-C
    # does, so that the temporary rule and queue of --wait are deleted however it ends.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    parser, bulk_parser = build_parser(more_commands=(status.add_parser, redrive.add_parser))
    args = parser.parse_args(argv)
    if args.command == "backfill-age-index":
        if not args.stack and not (args.age_index_table and args.shards):
            parser.error("--messages-table needs --age-index-table and --shards")
        return _guarded(lambda: run_backfill(args))
    if args.command != "bulk":
        return _guarded(lambda: int(args.run(args)))
    bulk_id = args.bulk_id if args.bulk_id is not None else uuid.uuid4().hex
    try:
        detail = bulk_detail(args, bulk_id)
    except ValueError as refusal:
        bulk_parser.error(str(refusal))  # exits with EXIT_USAGE; nothing was sent
    return _guarded(lambda: run_bulk(args, detail))


def _guarded(run: Callable[[], int]) -> int:
    """Run a command; what stops it becomes a message on stderr and an exit code."""
    try:
        return run()
    except CommandError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
    except (ClientError, BotoCoreError) as error:
        print(f"{PROG}: AWS error: {error}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_FAILED
