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
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import TypeAdapter

from cancel_service.core.bulk import request_digest
from cancel_service.event_models import BulkProgress, BulkReport, BulkSelection
from cancel_service.models import utc_timestamp
from cancel_service_cli import redrive, status
from cancel_service_cli.arguments import (
    DEFAULT_TIMEOUT,
    PROG,
    build_parser,
    bulk_detail,
    check_wait_options,
    duration_seconds,
)
from cancel_service_cli.backfill import Tables, backfill, tables_of_stack
from cancel_service_cli.bulk_state import BulkStates, owner_has_projects, unknown_projects
from cancel_service_cli.errors import CommandError
from cancel_service_cli.lane import bulk_lane_backlog, wait_until_stopped
from cancel_service_cli.progress import ProgressDisplay, SentRequest, follow
from cancel_service_cli.report import describe_selector, report_lines
from cancel_service_cli.request import STACK_BUS_OUTPUT, check_bulk_rule, put_bulk_request
from cancel_service_cli.stack import Stack, aws_session, describe_stack
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
    """The request about to be sent, as its report and its state will name it (the service's own
    selector and digest)."""
    selection = _SELECTION.validate_python(detail)
    return SentRequest(
        selection.bulk_id or "",
        selection.dry_run,
        selection.selector(),
        utc_timestamp(),
        request_digest(selection.request()),
    )


def run_bulk(args: argparse.Namespace, detail: dict[str, Any]) -> int:
    give_up_at = time.monotonic() + args.timeout  # --timeout counts from the start
    # With --json, stdout carries the JSON alone, so that it can be piped.
    human = sys.stderr if args.json else sys.stdout
    session = aws_session()
    stack = describe_stack(session.client("cloudformation"), args.stack) if args.stack else None
    bus = stack.output(STACK_BUS_OUTPUT) if stack else args.bus
    events = session.client("events")
    check_bulk_rule(events, bus)
    if stack:
        _check_selection_exists(session.client("dynamodb"), stack, detail)
    bulk_id = detail["bulkId"]
    if not args.wait:
        put_bulk_request(events, bus, detail)
        print(f"bulk {bulk_id} requested on bus {bus} ({describe_selector(detail)})", file=human)
        if args.json:
            print(json.dumps(detail))
        return EXIT_OK
    states = BulkStates(session.client("dynamodb"), stack) if stack else None
    with ReportWatch(events, session.client("sqs"), bus, bulk_id, sys.stderr) as watch:
        if not watch.wait_until_live(give_up_at):
            print(
                f"{PROG}: the temporary rule did not deliver within --timeout {args.timeout} s; "
                "no bulk was requested",
                file=sys.stderr,
            )
            return EXIT_TIMEOUT
        sent = _sent(detail)
        put_bulk_request(events, bus, detail)
        print(f"bulk {bulk_id} requested on bus {bus} ({describe_selector(detail)}); waiting", file=human)
        display = ProgressDisplay(sys.stderr)
        try:
            report = follow(watch, give_up_at, display, sent, sys.stderr, states)
        except KeyboardInterrupt:
            display.close()
            print(f"{PROG}: interrupted; bulk {bulk_id} goes on in the service", file=sys.stderr)
            return EXIT_INTERRUPTED
        display.close()
    if report is None:
        _say_timed_out(args, bulk_id, display.latest)
        return EXIT_TIMEOUT
    for line in report_lines(report, args.max_messages):
        print(line, file=human)
    if report.selected == 0 and stack is None and "olderThanSeconds" not in report.selector:
        print(
            "  note              nothing selected: idle, or no such project or owner (--stack tells)",
            file=human,
        )
    if args.json:
        print(report.model_dump_json(by_alias=True, exclude_none=True))
    stops = _agent_stops(args, report, stack, session.client("sqs"), give_up_at, human)
    return exit_code_of(report) or stops


def _check_selection_exists(dynamodb: Any, stack: Stack, detail: dict[str, Any]) -> None:
    """A project id or owner the service does not know selects nothing, as an idle one does:
    refuse a request that names nothing known, warn about the unknown part of one that does."""
    if "projectIds" in detail:
        ids = list(dict.fromkeys(detail["projectIds"]))
        unknown = unknown_projects(dynamodb, stack, ids)
        named = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        if len(unknown) == len(ids):
            raise CommandError(
                f"no project {named} in the projects table of stack {stack.name}; nothing sent"
            )
        if unknown:
            print(
                f"{PROG}: warning: no project {named} in the projects table; they select nothing",
                file=sys.stderr,
            )
    elif "ownerId" in detail and not owner_has_projects(dynamodb, stack, detail["ownerId"]):
        raise CommandError(f"{detail['ownerId']} owns no project in stack {stack.name}; nothing sent")


def _say_timed_out(args: argparse.Namespace, bulk_id: str, latest: BulkProgress | None) -> None:
    print(
        f"{PROG}: no report of bulk {bulk_id} within {args.timeout} s; it may still be running"
        + (f" (last progress: {latest.line()})" if latest else "")
        + f". Its report, later: {PROG} bulk-report {bulk_id} --stack {args.stack or 'NAME'}",
        file=sys.stderr,
    )


def _agent_stops(
    args: argparse.Namespace,
    report: BulkReport,
    stack: Stack | None,
    sqs: Any,
    give_up_at: float,
    human: TextIO,
) -> int:
    """After the report: the bulk's agent stops may still be queued (they are paced). Say so, or
    with --wait-stops wait until the bulk lane is empty; EXIT_TIMEOUT when it is not by --timeout."""
    if report.dry_run or not report.cancelled:
        return EXIT_OK
    if stack is None:
        print(
            "  agent stops       queued in the bulk lane, paced: `status --stack NAME` counts them, "
            "`bulk --stack NAME --wait --wait-stops` waits for them",
            file=human,
        )
        return EXIT_OK
    if not args.wait_stops:
        backlog = bulk_lane_backlog(sqs, stack)
        more = "; --wait-stops waits until they are stopped" if backlog.messages else ""
        print(f"  agent stops       {backlog.line()}{more}", file=human)
        return EXIT_OK
    try:
        if wait_until_stopped(sqs, stack, give_up_at, human):
            return EXIT_OK
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; the agent stops go on in the service", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"{PROG}: agent stops still queued in the bulk lane after {args.timeout} s", file=sys.stderr)
    return EXIT_TIMEOUT


def run_bulk_report(args: argparse.Namespace) -> int:
    session = aws_session()
    states = BulkStates(
        session.client("dynamodb"), describe_stack(session.client("cloudformation"), args.stack)
    )
    state = states.read(args.bulk_id)
    if state is None:
        raise CommandError(
            f"no bulk {args.bulk_id} in table {states.name}: never requested, or older than its retention"
        )
    human = sys.stderr if args.json else sys.stdout
    if state.report is None:
        print(f"bulk {args.bulk_id} running since {state.started_at}: {state.progress.line()}", file=human)
        return EXIT_TIMEOUT
    for line in report_lines(state.report, states.cap(args.bulk_id)):
        print(line, file=human)
    if args.json:
        print(state.report.model_dump_json(by_alias=True, exclude_none=True))
    return exit_code_of(state.report)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def run_backfill(args: argparse.Namespace) -> int:
    session = aws_session()
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
    if args.command == "bulk-report":
        return _guarded(lambda: run_bulk_report(args))
    if args.command != "bulk":
        return _guarded(lambda: int(args.run(args)))
    wrong = check_wait_options(args)
    if wrong:
        bulk_parser.error(wrong)
    if args.timeout is None:
        args.timeout = duration_seconds(DEFAULT_TIMEOUT)
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
