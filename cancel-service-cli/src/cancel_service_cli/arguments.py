"""The command line of `cancel-service bulk`: its options, and the `Bulk Cancel Requested` detail
they ask for, checked by the service's own models of it before anything is sent."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from cancel_service.event_models import (
    MAX_OLDER_THAN_SECONDS,
    MIN_OLDER_THAN_SECONDS,
    BulkByOwner,
    BulkByProjects,
    BulkOlderThan,
)
from cancel_service_cli.request import STACK_BUS_OUTPUT

PROG = "cancel-service"
DEFAULT_TIMEOUT = "15m"

DURATIONS = "a DURATION is 90s, 45m, 2h, 1d, or a bare number of seconds"

_DURATION = re.compile(r"(\d+)([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_ID_CHARACTERS = "letters, digits, _ and -"
# Which option gave each field of the detail, and the rule the service's models hold it to, said
# as the operator types it (the models' own wording names fields and patterns the operator
# never typed).
_OPTION_OF_FIELD = {
    "projectIds": ("--projects", f"one or more comma-separated project ids, each 1 to 128 {_ID_CHARACTERS}"),
    "ownerId": ("--owner", "a Clerk user id: user_ and 1 to 64 letters or digits"),
    "olderThanSeconds": (
        "--older-than",
        f"at least {MIN_OLDER_THAN_SECONDS}s, at most {MAX_OLDER_THAN_SECONDS // 86400}d (ten years)",
    ),
    "reason": ("--reason", "1 to 128 characters"),
    "bulkId": ("--bulk-id", f"1 to 64 {_ID_CHARACTERS}"),
}


def duration_seconds(text: str) -> int:
    """`90s`, `45m`, `2h`, `1d`, or plain seconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 90s, 45m, 2h or 1d")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def positive_duration(text: str) -> int:
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


def build_parser(
    more_commands: Sequence[Callable[[Any], None]] = (),
) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The command's parser and its `bulk` subcommand's parser (which reports bulk errors);
    `more_commands` add their subcommands to the parser's (each given the subparsers)."""
    parser = argparse.ArgumentParser(prog=PROG, description="Operate the cancel service.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    bulk = commands.add_parser(
        "bulk",
        help="cancel the processing messages of projects, of an owner, or stuck for too long",
        description=(
            "Request a bulk cancel on the service's EventBridge bus (source app.operator). "
            "With --wait, follow it until its report. Exit codes: 0 it finished or reached its cap "
            "(dry runs too), 1 it failed or AWS refused a call, 2 a refused command line, 3 no "
            f"report within --timeout (the bulk goes on), 130 Ctrl-C. {DURATIONS.capitalize()}."
        ),
    )
    selector = bulk.add_mutually_exclusive_group(required=True)
    selector.add_argument("--projects", metavar="ID,ID", help="these projects (comma-separated ids)")
    selector.add_argument("--owner", metavar="USER_ID", help="every project of this Clerk user (user_...)")
    selector.add_argument(
        "--older-than",
        type=duration_seconds,
        metavar="DURATION",
        help="messages processing with no update for this long, in every project (at least 60s)",
    )
    bulk.add_argument("--reason", help="written as cancelReason (default bulk_request)")
    bulk.add_argument("--dry-run", action="store_true", help="count what would be cancelled; change nothing")
    bulk.add_argument("--max-messages", metavar="N", type=_positive_int, help="stop after N were cancelled")
    bulk.add_argument("--bulk-id", metavar="ID", help="1..64 of [A-Za-z0-9_-] (default: a new uuid4 hex)")
    bulk.add_argument("--wait", action="store_true", help="follow the bulk until its report")
    bulk.add_argument(
        "--wait-stops",
        action="store_true",
        help="with --wait and --stack: after the report, wait until the bulk lane holds no agent stop",
    )
    bulk.add_argument(
        "--timeout",
        metavar="DURATION",
        type=positive_duration,
        help=(
            f"with --wait: give up waiting after this long, from the start (default {DEFAULT_TIMEOUT}); "
            "the bulk goes on, and bulk-report reads its report later"
        ),
    )
    bulk.add_argument(
        "--json",
        action="store_true",
        help="print the report's JSON detail (without --wait: the request's) on stdout, the rest on stderr",
    )
    bus = bulk.add_mutually_exclusive_group(required=True)
    bus.add_argument("--bus", metavar="NAME", help="the service's event bus")
    bus.add_argument(
        "--stack",
        metavar="NAME",
        help=(
            f"the service's CloudFormation stack: its output {STACK_BUS_OUTPUT} names the bus; "
            "its tables and queues let the command check the selection exists, show progress "
            "after every page, and count the agent stops still queued"
        ),
    )
    for add_command in more_commands:
        add_command(commands)
    _add_bulk_report(commands)
    _add_backfill(commands)
    return parser, bulk


def check_wait_options(args: argparse.Namespace) -> str | None:
    """What is wrong with the options that only mean something while waiting, if anything."""
    if args.timeout is not None and not args.wait:
        return "--timeout needs --wait (without it the command only sends the request)"
    if args.wait_stops and not (args.wait and args.stack):
        return "--wait-stops needs --wait and --stack (the stack names the bulk lane)"
    return None


def _add_bulk_report(commands: Any) -> None:
    report = commands.add_parser(
        "bulk-report",
        help="a bulk's report, or its progress while it runs (e.g. after bulk --wait exited 3)",
        description=(
            "Read a bulk's state in the stack's bulk state table: its report once it ended, its "
            "running totals until then. Exit codes: 0 it finished or reached its cap, 1 it failed, "
            "is unknown, or AWS refused a call, 2 a refused command line, 3 it is still running."
        ),
    )
    report.add_argument("bulk_id", metavar="BULK_ID", help="the bulkId bulk printed")
    report.add_argument(
        "--stack",
        metavar="NAME",
        required=True,
        help="the service's CloudFormation stack (its BulkStateTableName)",
    )
    report.add_argument("--json", action="store_true", help="print the report's JSON detail on stdout")


def _add_backfill(commands: Any) -> None:
    backfill = commands.add_parser(
        "backfill-age-index",
        help="enter every message processing now in the age index (once, after it is first deployed)",
        description=(
            "Scan the messages table for processing messages and enter each in the age index "
            "unless it has an entry. Safe to run again, and while the service runs."
        ),
    )
    where = backfill.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", metavar="NAME", help="the stack: its table outputs and AgeIndexShards")
    where.add_argument("--messages-table", metavar="NAME", help="with --age-index-table and --shards")
    backfill.add_argument("--age-index-table", metavar="NAME")
    backfill.add_argument("--shards", metavar="N", type=_positive_int, help="the stack's AgeIndexShards")
    backfill.add_argument(
        "--segments", metavar="N", type=_positive_int, default=4, help="parallel Scan segments (default 4)"
    )


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
    option, rule = _OPTION_OF_FIELD.get(field, (field, first["msg"]))
    value = first.get("input")
    if field == "olderThanSeconds":
        shown = f"{value}s"
    elif value == []:
        shown = "no id"
    else:
        shown = repr(value)
    return f"{option}: {shown} refused: {rule}"
