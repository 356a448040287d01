"""The whole service on 127.0.0.1, built from template.yaml: no AWS account, no Docker.

The composition root: starts moto (devstack.aws), the Clerk stand-in (devstack.clerk) and the
API Gateway (devstack.gateway); creates the template's resources (devstack.provision), the
stand-in agents (devstack.demo) and the worker of their steps (devstack.agent); runs every function in
warm worker processes (devstack.lambdas), fed by the template's event sources
(devstack.delivery, devstack.sqs_source) and Step Functions' status changes
(devstack.sfn_events); and tells `invoke`, `token` and the tests where it runs through a state
file.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.agent.task_worker import AgentTaskWorker
from devstack.apigw import RouteThrottle, http_api_routes
from devstack.aws import LocalAws
from devstack.background import Background
from devstack.clerk import DEV_ISSUER, DEV_ORIGIN, JwksServer, SigningKey, session_claims
from devstack.constants import ROOT, STACK_NAME, TEMPLATE_PATH
from devstack.delivery import Delivery
from devstack.demo import (
    DEMO_ORG,
    DEMO_PROJECT,
    DEMO_USER,
    DemoData,
    create_stand_in_agents,
    stand_in_agent_arn,
)
from devstack.gateway import ApiGateway, HttpApi
from devstack.lambdas import FunctionPool, Invocation, host_architecture, runtime_environment
from devstack.pages import ApiDocs, DemoPages
from devstack.provision import provision, record_stack
from devstack.sfn_events import ExecutionWatcher
from devstack.template import Template, load_template


def default_state_file() -> Path:
    """Where a running stack tells `invoke` and `token` how to reach it (one per checkout)."""
    digest = hashlib.sha1(str(ROOT).encode(), usedforsecurity=False).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"devstack-{digest}.json"


def running_stack(state_file: Path) -> dict[str, Any] | None:
    """The running stack's description, if its state file names a live stack."""
    try:
        state: dict[str, Any] = json.loads(state_file.read_text())
        with urllib.request.urlopen(f"{state['origin']}/__devstack/info", timeout=2) as response:  # noqa: S310
            response.read()
    except (OSError, ValueError, KeyError):
        return None
    return state


def freeze_survivors(phase: str, info: dict[str, int]) -> None:
    """After a full collection, keep what survived it out of the next ones.

    The stack is one process: moto's services and botocore's models (frozen when it starts), then
    what it holds while it runs (executions, items, queued messages) all live as long as it does,
    and a full pass over them held every call of the stack (the GIL) for 0.14 s at start, more as
    they grew. Frozen after each full pass, the next one goes over what was made since.
    """
    if phase == "stop" and info["generation"] == 2:
        gc.freeze()


@dataclass
class StackOptions:
    host: str = "127.0.0.1"
    api_port: int = 3000
    clerk_port: int = 3001
    aws_port: int = 3002
    template_path: Path = TEMPLATE_PATH
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    seed: bool = True
    serve_api: bool = True
    state_file: Path | None = None


class DevStack:
    def __init__(self, options: StackOptions | None = None, log: Callable[[str], None] = print) -> None:
        self.options = options or StackOptions()
        self.log = log
        self.signing_key = SigningKey.development()
        self.pools: dict[str, FunctionPool] = {}
        self.started_in = 0.0
        self._background = Background()
        self._aws: LocalAws | None = None
        self._jwks: JwksServer | None = None
        self._gateway: ApiGateway | None = None

    def start(self) -> DevStack:
        started, options = time.monotonic(), self.options
        aws = self._aws = LocalAws(options.host, options.aws_port)
        self.aws_url = aws.url
        self._jwks = JwksServer([self.signing_key]).start(options.clerk_port)
        self.jwks_url = self._jwks.url
        if options.serve_api:  # bound before the template is read: its origin is a parameter
            self._gateway = ApiGateway(options.host, options.api_port)
        self.origin = self._gateway.origin if self._gateway else DEV_ORIGIN
        raw = load_template(options.template_path)
        self.template = Template(
            self._parameters(raw), path=options.template_path, raw=raw, aws_endpoint=self.aws_url
        )
        self.functions = self.template.functions()
        self.routes = http_api_routes(self.functions)
        provision(self.template, aws.dynamodb(), aws.events(), aws.sqs())
        # `--stack` of the operator's commands reads the outputs; the API's URL is the gateway's.
        record_stack(aws.client("cloudformation"), self.template, {"ApiUrl": self.origin})
        agents = create_stand_in_agents(aws.stepfunctions(), self.template.stack_name)
        # The template's agent (locally, the first stand-in) unless the template has none.
        self.agent_state_machine = self.template.parameters.get("AgentStateMachineArn") or agents[0]
        for spec in self.functions.values():
            environment = runtime_environment(spec, self.aws_url)
            self.pools[spec.logical_id] = FunctionPool(spec, environment, self._function_log)
        delivery = Delivery(aws, self.template, self.pools, self._background, self.log)
        delivery.wire()
        self.rules = delivery.rules
        ExecutionWatcher(aws, self._background, self.log)
        self.agent_steps = AgentTaskWorker(aws.dynamodb(), self.table_name, self._background, self.log)
        self.demo = DemoData(
            aws.dynamodb(), self.table_name, aws.stepfunctions(), self.agent_state_machine, self.agent_steps
        )
        if options.seed:
            self.demo.seed()
        if self._gateway is not None:
            self._serve(self._gateway)
        gc.collect()
        gc.freeze()
        gc.callbacks.append(freeze_survivors)
        self.started_in = time.monotonic() - started
        return self

    def _parameters(self, raw: dict[str, Any]) -> dict[str, str]:
        """Local values for the template's parameters; --parameter-overrides win."""
        parties = [self.origin] + ([DEV_ORIGIN] if self.origin != DEV_ORIGIN else [])
        local = {
            "ClerkIssuer": DEV_ISSUER,
            "ClerkJwksUrl": self.jwks_url,
            # The demo page's own origin (cookie requests from it carry it as Origin), and the
            # origin of the sample events (events/), which is the default origin of this stack.
            "ClerkAuthorizedParties": ",".join(parties),
            "Architecture": host_architecture(),
            "AgentStateMachineArn": stand_in_agent_arn(STACK_NAME),
        }
        declared = raw.get("Parameters", {})
        values = {name: value for name, value in local.items() if name in declared}
        return values | self.options.parameter_overrides

    def _serve(self, gateway: ApiGateway) -> None:
        pages = [
            DemoPages(self.demo, lambda user, lifetime: self.mint(user, lifetime=lifetime), self.describe)
        ]
        limits = self.template.http_api_throttle()
        api = HttpApi(
            self.routes,
            self.template.http_api_cors(),
            self.invoke,
            self.log,
            [*pages, ApiDocs()],
            RouteThrottle(*limits) if limits else None,
        )
        gateway.serve(api)
        for logical_id in {route.function for route in self.routes}:
            self.pools[logical_id].warm_up()

    def publish_state(self) -> None:
        """Tell `invoke`, `token` and tests where the stack is: the signal that it is ready."""
        if self.options.state_file is not None:
            self.options.state_file.write_text(json.dumps(self.describe(), indent=2))

    def stop(self) -> None:
        if self._gateway is not None:
            self._gateway.stop()
        self._background.stop()
        for pool in self.pools.values():
            pool.close()
        if self._jwks is not None:
            self._jwks.stop()
        if self._aws is not None:
            self._aws.stop()
        if self.options.state_file is not None:
            self.options.state_file.unlink(missing_ok=True)
        if freeze_survivors in gc.callbacks:  # not when the stack failed to start
            gc.callbacks.remove(freeze_survivors)
            gc.unfreeze()  # what the stack held is garbage now, or its caller's

    def __enter__(self) -> DevStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def describe(self) -> dict[str, Any]:
        """What `invoke`, `token` and the tests need to reach this stack."""
        return {
            "pid": os.getpid(),
            "apiUrl": self.origin,
            "origin": self.origin,
            "awsEndpoint": self.aws_url,
            "jwksUrl": self.jwks_url,
            "issuer": DEV_ISSUER,
            "templatePath": str(self.options.template_path),
            "parameters": self.template.parameters,
            "stackName": self.template.stack_name,
            "demo": {"userId": DEMO_USER, "orgId": DEMO_ORG, "projectId": DEMO_PROJECT},
            "startedInSeconds": round(self.started_in, 3),
        }

    def client(self, service: str) -> Any:
        assert self._aws is not None, "the stack is not started"
        return self._aws.client(service)

    def invoke(self, function: str, event: Any) -> Invocation:
        """A synchronous (RequestResponse) invocation, as API Gateway makes."""
        return self.pools[function].invoke(event)

    def table_name(self, logical_id: str) -> str:
        return self.template.physical_name(logical_id)

    def mint(self, user_id: str, *, org_id: str | None = None, lifetime: int = 60) -> str:
        claims = session_claims(user_id, org_id=org_id, azp=self.origin, lifetime=lifetime)
        return self.signing_key.sign(claims)

    def _function_log(self, logical_id: str, line: str) -> None:
        self.log(f"[{logical_id}] {line}")
