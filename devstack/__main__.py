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
import signal
import sys
import threading
import urllib.request
from pathlib import Path
from types import FrameType
from typing import Any

from devstack.clerk import DEV_ISSUER, DEV_ORIGIN, SigningKey, session_claims
from devstack.sample_events import CANCEL_PATH, DEMO_ORG, DEMO_PROJECT, DEMO_USER
from devstack.template import ROOT, TEMPLATE_PATH


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


def _state_file(value: str | None) -> Path:
    from devstack.stack import default_state_file

    return Path(value) if value else Path(os.environ.get("DEVSTACK_STATE_FILE") or default_state_file())


# --- up ----------------------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    from devstack.stack import DevStack, StackOptions

    state_file = _state_file(args.state_file)
    lock = threading.Lock()

    def log(line: str) -> None:
        with lock:
            print(line, flush=True)

    stack = DevStack(
        StackOptions(
            api_port=args.port,
            clerk_port=args.clerk_port,
            aws_port=args.aws_port,
            template_path=args.template,
            parameter_overrides=_overrides(args.parameter_overrides),
            state_file=state_file,
        ),
        log=log,
    )
    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start()
    except OSError as error:
        print(
            f"devstack: cannot start: {error} (another stack running? use --port/--clerk-port/--aws-port)",
            file=sys.stderr,
        )
        stack.stop()
        return 1
    _banner(stack, log)
    stack.publish_state()  # after the banner: whoever waits for the state file sees it printed
    while not stopped.wait(0.5):
        pass
    log("Stopping the local stack ...")
    stack.stop()
    log("Stopped.")
    return 0


def _banner(stack: Any, log: Any) -> None:
    token = stack.mint(DEMO_USER, lifetime=3600)
    messages_table = stack.table_name("MessagesTable")
    routes = (
        "\n".join(f"      {route.route_key:<32} -> {route.function}" for route in stack.routes)
        or "      (no HttpApi routes in the template)"
    )
    rules = "\n".join(f"      {rule}" for rule in stack.rules) or "      (none)"
    functions = ", ".join(stack.functions)
    python = shlex.quote(sys.executable) if not sys.executable.startswith(str(ROOT)) else ".venv/bin/python"
    curl = (
        f"curl -sS -X POST {stack.origin}{CANCEL_PATH} \\\n"
        f"      -H 'Authorization: Bearer {token}' \\\n"
        f"      -H 'Content-Type: application/json' -d '{json.dumps({'projectId': DEMO_PROJECT})}'"
    )
    log(
        f"""
Local stack up in {stack.started_in:.1f} s, built from {stack.options.template_path.name} \
(stack {stack.template.stack_name}; no AWS account, no Docker).

  Demo page         {stack.origin}/          (signed in as {DEMO_USER})
  HTTP API          {stack.origin}
{routes}
  API document      {stack.origin}/openapi.json   Swagger UI {stack.origin}/docs
  Functions         {functions}
  Event rules
{rules}
  AWS (moto)        {stack.aws_url}   e.g. AWS_ENDPOINT_URL={stack.aws_url} AWS_ACCESS_KEY_ID=x \
AWS_SECRET_ACCESS_KEY=x AWS_REGION=us-east-1 aws dynamodb scan --table-name {messages_table}
  Clerk stand-in    issuer {DEV_ISSUER}, JWKS {stack.jwks_url}
  Demo data         project {DEMO_PROJECT} (owner {DEMO_USER}, org {DEMO_ORG}),
                    processing messages in 2 conversations, agent executions RUNNING

  A session token for the demo user (1 hour):
    {token}

  Cancel the demo messages:
    {curl}

  More tokens:  {python} -m devstack token --user {DEMO_USER} [--org {DEMO_ORG}]
  One function: {python} -m devstack invoke CancelFunction -e events/cancel-bearer.json
  Demo reset:   curl -sS -X POST {stack.origin}/__devstack/reset

Function logs follow. Ctrl-C stops everything.
"""
    )


# --- token -------------------------------------------------------------------------------------


def _running_stack(state_file: Path) -> dict[str, Any] | None:
    """The running stack's description, if its state file names a live stack."""
    try:
        state: dict[str, Any] = json.loads(state_file.read_text())
        with urllib.request.urlopen(f"{state['origin']}/__devstack/info", timeout=2) as response:  # noqa: S310
            response.read()
    except (OSError, ValueError, KeyError):
        return None
    return state


def cmd_token(args: argparse.Namespace) -> int:
    state = _running_stack(_state_file(args.state_file))
    origin = args.origin or (state["origin"] if state else DEV_ORIGIN)
    claims = session_claims(args.user, org_id=args.org, azp=origin, lifetime=args.lifetime)
    print(SigningKey.development().sign(claims))
    return 0


def cmd_sam_seed(args: argparse.Namespace) -> int:
    from devstack.sam_local import seed

    message_ids = seed(args.aws_url)
    print(f"seeded {args.aws_url}: project {DEMO_PROJECT} with processing messages {', '.join(message_ids)}")
    return 0


# --- invoke ------------------------------------------------------------------------------------


def cmd_invoke(args: argparse.Namespace) -> int:
    from devstack.cfn import Template
    from devstack.lambdas import FunctionPool, load_env_vars, runtime_environment

    event: Any = {}
    if args.event == "-":
        event = json.load(sys.stdin)
    elif args.event:
        event = json.loads(Path(args.event).read_text())

    state = None if args.standalone else _running_stack(_state_file(args.state_file))
    stack = None
    if state is None:
        from devstack.stack import DevStack, StackOptions

        stack = DevStack(
            StackOptions(
                api_port=0,
                clerk_port=0,
                aws_port=0,
                template_path=args.template,
                parameter_overrides=_overrides(args.parameter_overrides),
                serve_api=False,
            ),
            log=lambda line: print(line, file=sys.stderr, flush=True),
        ).start()
        template, aws_endpoint = stack.template, stack.aws_url
        print(f"devstack: started a local stack for this call ({stack.started_in:.1f} s)", file=sys.stderr)
    else:
        parameters = {**state["parameters"], **_overrides(args.parameter_overrides)}
        aws_endpoint = state["awsEndpoint"]
        template = Template(parameters, path=Path(state["templatePath"]), aws_endpoint=aws_endpoint)
        print(f"devstack: using the running local stack at {state['origin']}", file=sys.stderr)
    try:
        functions = template.functions()
        if args.function not in functions:
            names = ", ".join(functions) or "none"
            print(
                f"devstack: no function {args.function} in the template (functions: {names})", file=sys.stderr
            )
            return 2
        spec = functions[args.function]
        environment = runtime_environment(spec, aws_endpoint, load_env_vars(args.env_vars, spec.logical_id))
        pool = FunctionPool(spec, environment, lambda _fn, line: print(line, file=sys.stderr, flush=True))
        try:
            invocation = pool.invoke(event)
        finally:
            pool.close()
        answer = invocation.error if invocation.failed else invocation.result
        print(json.dumps(answer))
        return 0
    finally:
        if stack is not None:
            stack.stop()


# --- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _stack_arguments(parser, top=True)
    commands = parser.add_subparsers(dest="command")

    up = commands.add_parser("up", help="run the local stack until Ctrl-C (the default)")
    _stack_arguments(up, top=False)
    for target, top in ((parser, True), (up, False)):
        for flag, port, what in (
            ("--port", 3000, "API and demo page"),
            ("--clerk-port", 3001, "Clerk JWKS"),
            ("--aws-port", 3002, "moto"),
        ):
            target.add_argument(
                flag,
                type=int,
                default=port if top else argparse.SUPPRESS,
                help=f"{what} port on 127.0.0.1 (default {port}; 0: any free port)",
            )

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

    args = parser.parse_args(argv)
    if args.command == "token":
        return cmd_token(args)
    if args.command == "invoke":
        return cmd_invoke(args)
    if args.command == "sam-seed":
        return cmd_sam_seed(args)
    return cmd_up(args)


if __name__ == "__main__":
    sys.exit(main())
