"""The command line of `cancel-service bulk`: its options, and the `Bulk Cancel Requested` detail
they ask for, checked by the service's own models of it before anything is sent."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from cancel_service.event_models import BulkByOwner, BulkByProjects, BulkOlderThan
from cancel_service_cli.request import STACK_BUS_OUTPUT

PROG = "cancel-service"
DEFAULT_TIMEOUT = "15m"

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
            "With --wait, follow it until its report; exit 0 when it finished or reached its cap, "
            "1 when it failed, 3 when no report came in time, 2 for a refused command line."
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
    for add_command in more_commands:
        add_command(commands)
    _add_backfill(commands)
    return parser, bulk


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
    value = first.get("input")
    shown = f"{value}s" if field == "olderThanSeconds" else repr(value)
    return f"{_OPTION_OF_FIELD.get(field, field)}: {shown} refused ({first['msg']})"
