"""`python -m devstack`: the service on this machine, with no AWS account and no Docker.

python -m devstack [up] [--port 3000] [--clerk-port 3001] [--aws-port 3002] [--state-file F]
    The local stack (moto, Clerk stand-in, API Gateway, functions, demo page) until Ctrl-C.
python -m devstack token --user user_... [--org org_...] [--lifetime 3600]
    A session token signed by the development Clerk key, for curl.
python -m devstack invoke <FunctionLogicalId> [-e events/x.json] [--env-vars env.json]
    Like `sam local invoke`: one invocation of a template function, logs on stderr, the
    result on stdout; against the running stack, or (none running, or --standalone) a
    stack started for the call.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from devstack.constants import TEMPLATE_PATH
from devstack.demo import DEMO_USER


def _overrides(values: list[str]) -> dict[str, str]:
    """SAM's --parameter-overrides: `Name=Value` pairs (also `ParameterKey=..,ParameterValue=..`)."""
    result: dict[str, str] = {}
    for value in values:
        for pair in shlex.split(value):
            if pair.startswith("ParameterKey="):
                key_part, _, value_part = pair.partition(",")
                result[key_part.removeprefix("ParameterKey=")] = value_part.removeprefix("ParameterValue=")
            else:
                key, _, val = pair.partition("=")
                result[key] = val
    return result


def _stack_arguments(parser: argparse.ArgumentParser, top: bool) -> None:
    """Options accepted before or after the subcommand (a subcommand's own default must not
    overwrite a value given before it, hence SUPPRESS there)."""

    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    parser.add_argument("--state-file", default=default(None), help="where a running stack describes itself")
    parser.add_argument("--template", type=Path, default=default(TEMPLATE_PATH), help="template.yaml to run")
    parser.add_argument("--parameter-overrides", action="append", default=default([]), metavar="NAME=VALUE")


def _port_arguments(parser: argparse.ArgumentParser, top: bool) -> None:
    for flag, port, what in (
        ("--port", 3000, "API and demo page"),
        ("--clerk-port", 3001, "Clerk JWKS"),
        ("--aws-port", 3002, "moto"),
    ):
        parser.add_argument(
            flag,
            type=int,
            default=port if top else argparse.SUPPRESS,
            help=f"{what} port on 127.0.0.1 (default {port}; 0: any free port)",
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devstack", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _stack_arguments(parser, top=True)
    commands = parser.add_subparsers(dest="command")

    up = commands.add_parser("up", help="run the local stack until Ctrl-C (the default)")
    _stack_arguments(up, top=False)
    _port_arguments(parser, top=True)
    _port_arguments(up, top=False)

    token = commands.add_parser("token", help="mint a Clerk session token with the development key")
    token.add_argument("--user", default=DEMO_USER, help=f"Clerk user id (default {DEMO_USER})")
    token.add_argument("--org", help="active organization id (org_...)")
    token.add_argument("--lifetime", type=int, default=3600, help="seconds (Clerk's own: 60)")
    token.add_argument("--origin", help="azp claim (default: the running stack's origin)")
    _stack_arguments(token, top=False)

    invoke = commands.add_parser("invoke", help="invoke one function of the template, like sam local invoke")
    invoke.add_argument("function", metavar="FunctionLogicalId")
    invoke.add_argument("-e", "--event", help="event file (JSON); '-' reads stdin; default {}")
    invoke.add_argument("-n", "--env-vars", help="SAM-style env.json overriding the template's variables")
    invoke.add_argument(
        "--standalone", action="store_true", help="start a stack for this call, even if one runs"
    )
    _stack_arguments(invoke, top=False)

    sam_seed = commands.add_parser(
        "sam-seed", help="create the tables, bus and demo data for `sam local` in a moto server"
    )
    sam_seed.add_argument(
        "--aws-url", required=True, help="the moto server, e.g. $MOTO_URL of sam-local-setup --aws"
    )
    return parser


def _read_event(name: str | None) -> Any:
    if name == "-":
        return json.load(sys.stdin)
    return json.loads(Path(name).read_text()) if name else {}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Imported once the arguments are known to be valid: a typo is answered at once.
    from devstack import commands
    from devstack.stack import StackOptions, default_state_file

    state_file = Path(args.state_file or os.environ.get("DEVSTACK_STATE_FILE") or default_state_file())
    if args.command == "sam-seed":
        return commands.sam_seed(args.aws_url)
    if args.command == "token":
        return commands.token(state_file, args.user, args.org, args.lifetime, args.origin)
    overrides = _overrides(args.parameter_overrides)
    if args.command == "invoke":
        options = StackOptions(api_port=0, clerk_port=0, aws_port=0, template_path=args.template,
                               parameter_overrides=overrides, serve_api=False)  # fmt: skip
        return commands.invoke(options, state_file, args.function, _read_event(args.event), args.env_vars,
                               args.standalone)  # fmt: skip
    options = StackOptions(
        api_port=args.port,
        clerk_port=args.clerk_port,
        aws_port=args.aws_port,
        template_path=args.template,
        parameter_overrides=overrides,
        state_file=state_file,
    )
    return commands.up(options)


if __name__ == "__main__":
    sys.exit(main())
