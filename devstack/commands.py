"""What each `python -m devstack` subcommand does (devstack.__main__ parses the arguments):
`up` runs the local stack until Ctrl-C and prints how to use it, `token` mints a session token,
`invoke` runs one function like `sam local invoke`, `sam-seed` writes the data `sam local` uses.
"""

from __future__ import annotations

import json
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from devstack.agent.answer import WORDS_PER_SECOND
from devstack.clerk import DEV_ISSUER, DEV_ORIGIN, SigningKey, session_claims
from devstack.constants import CANCEL_PATH, REGION, ROOT
from devstack.demo import DEMO_ORG, DEMO_PROJECT, DEMO_USER
from devstack.stack import DevStack, StackOptions, running_stack


def up(options: StackOptions) -> int:
    lock = threading.Lock()

    def log(line: str) -> None:
        with lock:
            print(line, flush=True)

    stack = DevStack(options, log=log)
    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001 - signal handler's signature
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
    log(banner(stack))
    stack.publish_state()  # after the banner: whoever waits for the state file sees it printed
    while not stopped.wait(0.5):
        pass
    log("Stopping the local stack ...")
    stack.stop()
    log("Stopped.")
    return 0


def banner(stack: DevStack) -> str:
    """What `make stack` prints once the stack is up: where everything is and how to use it."""
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
    return f"""
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
AWS_SECRET_ACCESS_KEY=x AWS_REGION={REGION} aws dynamodb scan --table-name {messages_table}
  Clerk stand-in    issuer {DEV_ISSUER}, JWKS {stack.jwks_url}
  Demo data         project {DEMO_PROJECT} (owner {DEMO_USER}, org {DEMO_ORG}),
                    processing messages in 2 conversations, agent executions RUNNING
  Demo agents       each streams its answer into its message ({WORDS_PER_SECOND:g} words a second, `content`)
                    from a step watched by message-cancel-watch: a Stop ends the step within
                    about a second ("stopped after N words" on the demo page) and the execution ABORTED

  A session token for the demo user (1 hour):
    {token}

  Cancel the demo messages:
    {curl}

  More tokens:  {python} -m devstack token --user {DEMO_USER} [--org {DEMO_ORG}]
  One function: {python} -m devstack invoke CancelFunction -e events/cancel-bearer.json
  Demo reset:   curl -sS -X POST {stack.origin}/__devstack/reset

Function logs follow. Ctrl-C stops everything.
"""


def token(state_file: Path, user: str, org: str | None, lifetime: int, origin: str | None) -> int:
    state = running_stack(state_file)
    azp = origin or (state["origin"] if state else DEV_ORIGIN)
    print(SigningKey.development().sign(session_claims(user, org_id=org, azp=azp, lifetime=lifetime)))
    return 0


def sam_seed(aws_url: str) -> int:
    from devstack.sam_local import seed

    message_ids = seed(aws_url)
    print(f"seeded {aws_url}: project {DEMO_PROJECT} with processing messages {', '.join(message_ids)}")
    return 0


def invoke(
    options: StackOptions, state_file: Path, function: str, event: Any, env_vars: str | None, standalone: bool
) -> int:
    """One invocation of `function`: against the running stack, or one started for the call."""
    from devstack.lambdas import FunctionPool, load_env_vars, runtime_environment
    from devstack.template import Template

    state = None if standalone else running_stack(state_file)
    stack = None
    if state is None:
        stack = DevStack(options, log=lambda line: print(line, file=sys.stderr, flush=True)).start()
        template, aws_endpoint = stack.template, stack.aws_url
        print(f"devstack: started a local stack for this call ({stack.started_in:.1f} s)", file=sys.stderr)
    else:
        parameters = {**state["parameters"], **options.parameter_overrides}
        aws_endpoint = state["awsEndpoint"]
        template = Template(parameters, path=Path(state["templatePath"]), aws_endpoint=aws_endpoint)
        print(f"devstack: using the running local stack at {state['origin']}", file=sys.stderr)
    try:
        functions = template.functions()
        if function not in functions:
            names = ", ".join(functions) or "none"
            print(f"devstack: no function {function} in the template (functions: {names})", file=sys.stderr)
            return 2
        spec = functions[function]
        environment = runtime_environment(spec, aws_endpoint, load_env_vars(env_vars, spec.logical_id))
        pool = FunctionPool(spec, environment, lambda _fn, line: print(line, file=sys.stderr, flush=True))
        try:
            invocation = pool.invoke(event)
        finally:
            pool.close()
        print(json.dumps(invocation.error if invocation.failed else invocation.result))
        return 0
    finally:
        if stack is not None:
            stack.stop()
