"""The whole service on 127.0.0.1, built from template.yaml: no AWS account, no Docker.

- AWS: moto in server mode, in this process (so function processes reach it through
  AWS_ENDPOINT_URL), with Step Functions really executing state machines.
- Resources: every table, bus, queue and state machine of the template, and every event source
  of its functions (HttpApi routes, EventBridge rules, schedules, SQS queues).
- EventBridge delivery: each rule of the template becomes a moto rule with its own pattern on its
  own bus, targeting a delivery queue; moto's pattern matcher decides which events reach it (as
  EventBridge does), and a poller hands each delivered event to the function as an asynchronous
  invocation (Lambda's retries, then its on-failure destination). A rule whose target is a queue
  of the template delivers to that queue itself.
- SQS event sources: pollers that work like Lambda's event source mapping (batch size, batching
  window, maximum concurrency, partial batch failures); the queue's redrive policy does the rest.
- Clerk: the development key served as a JWKS over HTTP (devstack.clerk.JwksServer).
- Functions: warm worker processes per function (devstack.lambdas), each with the template's
  environment resolved to the local names.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from devstack.cfn import ACCOUNT, REGION, STACK_NAME, FunctionSpec, Template
from devstack.clerk import DEV_ISSUER, DEV_ORIGIN, JwksServer, SigningKey, session_claims
from devstack.lambdas import FunctionPool, Invocation, host_architecture, runtime_environment
from devstack.sample_events import DEMO_ORG, DEMO_PROJECT, DEMO_USER
from devstack.template import ROOT, TEMPLATE_PATH

AGENT_DIR = ROOT / "devstack" / "agent"
STATE_MACHINE_TYPES = ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine")
RULE_EVENT_TYPES = ("EventBridgeRule", "CloudWatchEvent")
SCHEDULE_EVENT_TYPES = ("Schedule", "ScheduleV2")
DEFAULT_RETRIES = 2  # Lambda's asynchronous invocation: two retries after the first attempt
RETRY_DELAYS = (1.0, 2.0)  # AWS waits about 1 and 2 minutes; locally, seconds
DEMO_MESSAGES = (
    # id, conversation, status
    ("k58xyz789ghi012", "conv_planning", "processing"),
    ("k59abc456def789", "conv_refactor", "processing"),
    ("k5aplanned00001", "conv_planning", "completed"),
    ("k5bqueued000001", "conv_refactor", "pending"),
)


def stand_in_agents(stack_name: str) -> list[tuple[str, Path]]:
    """The stand-in agent state machines of devstack/agent/ (name, definition file)."""
    return [
        (f"{stack_name}-{path.name.removesuffix('.asl.json')}", path)
        for path in sorted(AGENT_DIR.glob("*.asl.json"))
    ]


def stand_in_agent_arn(stack_name: str) -> str | None:
    """The ARN the local stack gives the template's AgentStateMachineArn: the first stand-in."""
    agents = stand_in_agents(stack_name)
    return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{agents[0][0]}" if agents else None


def default_state_file() -> Path:
    """Where a running stack tells `invoke` and `token` how to reach it (one per checkout)."""
    digest = hashlib.sha1(str(ROOT).encode(), usedforsecurity=False).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"devstack-{digest}.json"


def iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


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


@dataclass
class Route:
    method: str  # upper case, or ANY
    path: str  # template path, e.g. /api/messages/{id}; "$default" for the default route
    function: str
    pattern: re.Pattern[str]
    specificity: tuple[int, int]

    @classmethod
    def of(cls, method: str, path: str, function: str) -> Route:
        if path == "$default":
            return cls("ANY", path, function, re.compile(".*"), (-1, -1))
        regex, literal = "", 0
        for segment in path.strip("/").split("/"):
            if segment.startswith("{") and segment.endswith("+}"):
                regex += f"/(?P<{segment[1:-2]}>.+)"
            elif segment.startswith("{") and segment.endswith("}"):
                regex += f"/(?P<{segment[1:-1]}>[^/]+)"
            else:
                regex += "/" + re.escape(segment)
                literal += 1
        return cls(method.upper(), path, function, re.compile(regex or "/"), (literal, len(path)))

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"


def parse_rate(expression: str) -> float | None:
    """Seconds between runs of `rate(N unit)`; None for cron() (not run on a timer locally)."""
    match = re.fullmatch(r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)", expression.strip())
    if not match:
        return None
    unit = {"minute": 60, "hour": 3600, "day": 86400}[match.group(2).rstrip("s")]
    return int(match.group(1)) * unit


class DevStack:
    def __init__(self, options: StackOptions | None = None, log: Callable[[str], None] = print) -> None:
        self.options = options or StackOptions()
        self.log = log
        self.signing_key = SigningKey.development()
        self.pools: dict[str, FunctionPool] = {}
        self.routes: list[Route] = []
        self.cors: dict[str, Any] | None = None
        self.rules: list[str] = []
        self.delivery: dict[str, tuple[str, dict[str, Any]]] = {}  # queue url -> (function, target)
        self.agent_state_machine: str | None = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="async-invoke")
        self._moto: Any = None
        self._jwks: JwksServer | None = None
        self._gateway: Any = None
        self._execution_status: dict[str, str] = {}
        self.started_in: float = 0.0

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> DevStack:
        started = time.monotonic()
        options = self.options
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        from moto.server import ThreadedMotoServer

        self._moto = ThreadedMotoServer(ip_address=options.host, port=options.aws_port, verbose=False)
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        self.aws_url = f"http://{host}:{port}"
        self._moto_config({"stepfunctions": {"execute_state_machine": True}})
        self._jwks = JwksServer([self.signing_key]).start(options.clerk_port)
        self.jwks_url = self._jwks.url

        gateway = None
        if options.serve_api:
            from devstack.gateway import ApiGateway

            gateway = ApiGateway(self, options.host, options.api_port)
            self.api_port = gateway.port
            self.origin = f"http://{options.host}:{gateway.port}"
        else:
            self.api_port = 0
            self.origin = DEV_ORIGIN
        self.template = Template(self._parameters(), path=options.template_path, aws_endpoint=self.aws_url)
        self.agent_state_machine = self.template.parameters.get("AgentStateMachineArn") or None
        self.functions: dict[str, FunctionSpec] = self.template.functions()
        self._session = boto3.session.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto accepts any credentials
            region_name=REGION,
        )
        self._create_resources()
        for spec in self.functions.values():
            environment = runtime_environment(spec, self.aws_url)
            reserved = spec.properties.get("ReservedConcurrentExecutions")
            self.pools[spec.logical_id] = FunctionPool(
                spec, environment, self._function_log, max_containers=int(reserved) if reserved else 10
            )
        self._wire_event_sources()
        self._spawn(self._watch_executions, "sfn-status")
        if options.seed:
            self.seed_demo()
        if gateway is not None:
            self._gateway = gateway
            gateway.serve()
            for logical_id in {route.function for route in self.routes}:
                self.pools[logical_id].warm_up()
        self.started_in = time.monotonic() - started
        return self

    def publish_state(self) -> None:
        """Tell `invoke`, `token` and tests where the stack is: the signal that it is ready."""
        if self.options.state_file is not None:
            self.options.state_file.write_text(json.dumps(self.describe(), indent=2))

    def stop(self) -> None:
        self._stopping.set()
        if self._gateway is not None:
            self._gateway.stop()
        for thread in self._threads:
            thread.join(timeout=3)
        self._executor.shutdown(wait=False, cancel_futures=True)
        for pool in self.pools.values():
            pool.close()
        if self._jwks is not None:
            self._jwks.stop()
        if self._moto is not None:
            self._moto.stop()
        if self.options.state_file is not None:
            self.options.state_file.unlink(missing_ok=True)

    def __enter__(self) -> DevStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def describe(self) -> dict[str, Any]:
        """What `invoke`, `token` and the tests need to reach this stack."""
        from os import getpid

        return {
            "pid": getpid(),
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
        return self._session.client(service, endpoint_url=self.aws_url)  # type: ignore[call-overload]

    def _moto_config(self, config: dict[str, Any]) -> None:
        request = urllib.request.Request(  # noqa: S310 - loopback moto
            f"{self.aws_url}/moto-api/config", data=json.dumps(config).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback moto
            response.read()

    def _parameters(self) -> dict[str, str]:
        """Local values for the template's parameters; --parameter-overrides win."""
        parties = [self.origin] + ([DEV_ORIGIN] if self.origin != DEV_ORIGIN else [])
        local = {
            "ClerkIssuer": DEV_ISSUER,
            "ClerkJwksUrl": self.jwks_url,
            # The demo page's own origin (cookie requests from it carry it as Origin), and the
            # origin of the sample events (events/), which is the default origin of this stack.
            "ClerkAuthorizedParties": ",".join(parties),
            "Architecture": host_architecture(),
        }
        agent_arn = stand_in_agent_arn(STACK_NAME)
        if agent_arn:
            local["AgentStateMachineArn"] = agent_arn
        declared = Template.declared_parameters(self.options.template_path)
        values = {name: value for name, value in local.items() if name in declared}
        values.update(self.options.parameter_overrides)
        return values

    def _spawn(self, target: Callable[..., None], name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _function_log(self, logical_id: str, line: str) -> None:
        self.log(f"[{logical_id}] {line}")

    # --- resources ----------------------------------------------------------------------------

    def _create_resources(self) -> None:
        template = self.template
        dynamodb, events, sqs = self.client("dynamodb"), self.client("events"), self.client("sqs")
        for logical_id, resource in template.of_type("AWS::DynamoDB::Table").items():
            self._create_table(
                dynamodb, template.physical_name(logical_id), template.resolve(resource["Properties"])
            )
        for logical_id in template.of_type("AWS::Events::EventBus"):
            events.create_event_bus(Name=template.physical_name(logical_id))
        queues = template.of_type("AWS::SQS::Queue")
        # Dead-letter queues first: a redrive policy names a queue that must exist.
        for logical_id in sorted(
            queues, key=lambda q: "RedrivePolicy" in (queues[q].get("Properties") or {})
        ):
            properties = template.resolve(queues[logical_id].get("Properties") or {})
            attributes = {
                name: json.dumps(value)
                if isinstance(value, dict)
                else str(value).lower()
                if isinstance(value, bool)
                else str(value)
                for name, value in properties.items()
                if name not in ("QueueName", "Tags")
            }
            sqs.create_queue(QueueName=template.physical_name(logical_id), Attributes=attributes)
        self._create_state_machines()

    @staticmethod
    def _create_table(client: Any, name: str, properties: dict[str, Any]) -> None:
        request: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": properties["AttributeDefinitions"],
            "KeySchema": properties["KeySchema"],
            "BillingMode": properties.get("BillingMode", "PROVISIONED"),
        }
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes", "ProvisionedThroughput"):
            if key in properties:
                request[key] = properties[key]
        stream = properties.get("StreamSpecification")
        if stream:
            request["StreamSpecification"] = {"StreamEnabled": True, **stream}
        client.create_table(**request)
        ttl = properties.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            client.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)

    def _create_state_machines(self) -> None:
        template, sfn = self.template, self.client("stepfunctions")
        role = f"arn:aws:iam::{ACCOUNT}:role/devstack-states"
        for logical_id, resource in template.of_type(*STATE_MACHINE_TYPES).items():
            properties = resource.get("Properties") or {}
            definition = properties.get("Definition") or properties.get("DefinitionString")
            uri = properties.get("DefinitionUri")
            if definition is None and isinstance(uri, str):
                text = (template.root / uri).read_text()
                definition = json.loads(text) if uri.endswith(".json") else _yaml(text)
            if definition is None:
                self.log(
                    f"! {logical_id}: no local definition (Definition or a local DefinitionUri); skipped"
                )
                continue
            resolved = template.resolve(definition)
            text = resolved if isinstance(resolved, str) else json.dumps(resolved)
            for name, value in template.resolve(properties.get("DefinitionSubstitutions") or {}).items():
                text = text.replace("${" + name + "}", str(value))
            arn = sfn.create_state_machine(
                name=template.physical_name(logical_id), definition=text, roleArn=role
            )["stateMachineArn"]
            if "agent" in logical_id.lower():
                self.agent_state_machine = self.agent_state_machine or arn
        # The stand-in for the AI agent (devstack/agent/): what the demo's messages run on, and
        # the template's AgentStateMachineArn parameter.
        for name, path in stand_in_agents(template.stack_name):
            arn = sfn.create_state_machine(name=name, definition=path.read_text(), roleArn=role)[
                "stateMachineArn"
            ]
            self.agent_state_machine = self.agent_state_machine or arn

    # --- event sources ------------------------------------------------------------------------

    def _wire_event_sources(self) -> None:
        self.cors = self.template.http_api_cors()
        for spec in self.functions.values():
            for event in spec.events:
                props = event.properties
                if event.type == "HttpApi":
                    path = props.get("Path", "$default")
                    self.routes.append(Route.of(props.get("Method", "ANY"), path, spec.logical_id))
                elif event.type in RULE_EVENT_TYPES:
                    target: dict[str, Any] = {
                        key: props[key] for key in ("Input", "InputPath", "InputTransformer") if key in props
                    }
                    self._rule_to_function(
                        props.get("RuleName") or f"{spec.name}-{event.name}"[:64],
                        props.get("EventBusName", "default"),
                        props.get("Pattern", {}),
                        spec.logical_id,
                        target,
                        props.get("State", "ENABLED"),
                    )
                elif event.type in SCHEDULE_EVENT_TYPES:
                    self._schedule(spec, event.name, props)
                elif event.type == "SQS":
                    source = SqsSource.of(props, self._queue_url(str(props["Queue"])))
                    # One poller per batch in flight: at most MaximumConcurrency at once.
                    for poller in range(source.maximum_concurrency):
                        self._spawn(
                            self._poll_sqs_source, f"sqs-{spec.logical_id}-{poller}", spec.logical_id, source
                        )
                else:
                    self.log(f"! {spec.logical_id}.{event.name}: event source {event.type} not run locally")
        for logical_id, resource in self.template.of_type("AWS::Events::Rule").items():
            props = self.template.resolve(resource.get("Properties") or {})
            if "EventPattern" not in props:
                continue
            for target in props.get("Targets", []):
                if str(target.get("Arn", "")).startswith(f"arn:aws:sqs:{REGION}:{ACCOUNT}:"):
                    self._rule_to_queue(
                        self.template.physical_name(logical_id),
                        props.get("EventBusName", "default"),
                        props["EventPattern"],
                        target,
                        props.get("State", "ENABLED"),
                    )
                    continue
                function = next((f for f in self.functions.values() if f.arn == target.get("Arn")), None)
                if function is None:
                    self.log(f"! {logical_id}: target {target.get('Arn')} is neither a function nor a queue")
                    continue
                extra: dict[str, Any] = {
                    key: target[key] for key in ("Input", "InputPath", "InputTransformer") if key in target
                }
                self._rule_to_function(
                    self.template.physical_name(logical_id),
                    props.get("EventBusName", "default"),
                    props["EventPattern"],
                    function.logical_id,
                    extra,
                    props.get("State", "ENABLED"),
                )
        self.routes.sort(key=lambda route: route.specificity, reverse=True)

    def _rule_to_function(
        self, rule: str, bus: str, pattern: Any, function: str, target: dict[str, Any], state: str
    ) -> None:
        """A moto rule with the template's pattern, delivering to a queue that feeds the function."""
        events, sqs = self.client("events"), self.client("sqs")
        bus_name = bus.split("/")[-1] if bus.startswith("arn:") else bus
        pattern_text = pattern if isinstance(pattern, str) else json.dumps(pattern)
        events.put_rule(Name=rule, EventBusName=bus_name, EventPattern=pattern_text, State=state)
        queue_name = f"devstack-delivery-{rule}"[:80]
        queue_url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
        queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue_name}"
        moto_target: dict[str, Any] = {"Id": "function", "Arn": queue_arn}
        if "InputTransformer" in target:
            moto_target["InputTransformer"] = target["InputTransformer"]
        events.put_targets(Rule=rule, EventBusName=bus_name, Targets=[moto_target])
        self.delivery[queue_url] = (function, target)
        self.rules.append(f"{rule} on {bus_name} -> {function}")
        self._spawn(self._poll_delivery, f"deliver-{rule}", queue_url)

    def _rule_to_queue(self, rule: str, bus: str, pattern: Any, target: dict[str, Any], state: str) -> None:
        """A moto rule with the template's pattern, delivering to the template's queue itself."""
        events = self.client("events")
        bus_name = bus.split("/")[-1] if bus.startswith("arn:") else bus
        pattern_text = pattern if isinstance(pattern, str) else json.dumps(pattern)
        events.put_rule(Name=rule, EventBusName=bus_name, EventPattern=pattern_text, State=state)
        moto_target = {
            "Id": str(target.get("Id", "queue")),
            "Arn": str(target["Arn"]),
            "InputTransformer": target.get("InputTransformer") or EVENTBRIDGE_ENVELOPE,
        }
        events.put_targets(Rule=rule, EventBusName=bus_name, Targets=[moto_target])
        self.rules.append(f"{rule} on {bus_name} -> queue {str(target['Arn']).rsplit(':', 1)[-1]}")

    def _poll_delivery(self, queue_url: str) -> None:
        sqs = self.client("sqs")
        function, target = self.delivery[queue_url]
        while not self._stopping.is_set():
            try:
                batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            except Exception:  # noqa: BLE001 - moto is stopping
                if self._stopping.is_set():
                    return
                time.sleep(0.5)
                continue
            for message in batch.get("Messages", []):
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                event = json.loads(message["Body"])
                if "InputTransformer" not in target and isinstance(event, dict):
                    # moto's delivery drops the envelope's `account` (its default input template
                    # lacks it); EventBridge always sends it.
                    event = {"version": "0", "id": event.get("id"), "detail-type": event.get("detail-type"),
                             "source": event.get("source"), "account": ACCOUNT, **event}  # fmt: skip
                if "Input" in target:
                    event = json.loads(target["Input"])
                elif "InputPath" in target:
                    event = _json_path(event, target["InputPath"])
                self._executor.submit(self.invoke_async, function, event)

    def _schedule(self, spec: FunctionSpec, name: str, props: dict[str, Any]) -> None:
        expression = str(props.get("Schedule") or props.get("ScheduleExpression") or "")
        enabled = props.get("Enabled", True) and props.get("State", "ENABLED") == "ENABLED"
        every = parse_rate(expression)
        if every is None or not enabled:
            why = "disabled" if not enabled else "cron schedules are not run on a timer locally"
            self.log(f"  {spec.logical_id}.{name}: {expression} ({why}; use `python -m devstack invoke`)")
            return
        rule_arn = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{spec.name}-{name}"

        def tick() -> None:
            while not self._stopping.wait(every):
                event = json.loads(props["Input"]) if "Input" in props else scheduled_event(rule_arn)
                self._executor.submit(self.invoke_async, spec.logical_id, event)

        self.rules.append(f"{expression} -> {spec.logical_id}")
        self._spawn(tick, f"schedule-{spec.logical_id}-{name}")

    def _poll_sqs_source(self, function: str, source: SqsSource) -> None:
        """One poller of Lambda's SQS event source mapping: a batch at a time, deleting what succeeded.

        A batch is up to BatchSize messages, filled for at most MaximumBatchingWindowInSeconds
        after its first one. Messages that were not deleted (the invocation failed, or they are in
        its batchItemFailures) come back after the queue's visibility timeout; the queue's redrive
        policy (moto applies it on receive) moves them to its dead-letter queue in the end.
        """
        sqs = self.client("sqs")
        while not self._stopping.is_set():
            try:
                messages = self._receive_batch(sqs, source)
            except Exception:  # noqa: BLE001 - moto is stopping
                if self._stopping.is_set():
                    return
                time.sleep(0.5)
                continue
            if not messages:
                continue
            records = [sqs_record(message, source.queue_arn) for message in messages]
            try:
                invocation = self.pools[function].invoke({"Records": records})
            except RuntimeError:  # the pool is closed: the local stack is stopping
                return
            done = succeeded_messages(
                messages, invocation, reports_item_failures=source.reports_item_failures
            )
            if len(done) < len(messages):
                self.log(f"! {function}: {len(messages) - len(done)} of {len(messages)} SQS records failed")
            self._delete(sqs, source, done)

    @staticmethod
    def _delete(sqs: Any, source: SqsSource, messages: list[dict[str, Any]]) -> None:
        for first in range(0, len(messages), 10):  # SQS deletes at most 10 per call
            sqs.delete_message_batch(
                QueueUrl=source.queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                    for index, message in enumerate(messages[first : first + 10])
                ],
            )

    def _receive_batch(self, sqs: Any, source: SqsSource) -> list[dict[str, Any]]:
        """The first message(s) after a long poll of up to 1 s, then more until the batch is full
        or the batching window is over."""
        messages = self._receive(sqs, source, source.batch_size, wait_seconds=1)
        window_ends = time.monotonic() + source.batching_window_seconds
        while messages and len(messages) < source.batch_size and not self._stopping.is_set():
            remaining = window_ends - time.monotonic()
            if remaining <= 0:
                break
            more = self._receive(sqs, source, source.batch_size - len(messages), wait_seconds=int(remaining))
            if not more and remaining < 1:
                self._stopping.wait(min(remaining, 0.1))  # SQS waits whole seconds only
            messages += more
        return messages

    @staticmethod
    def _receive(sqs: Any, source: SqsSource, count: int, *, wait_seconds: int) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = sqs.receive_message(
            QueueUrl=source.queue_url,
            MaxNumberOfMessages=min(count, 10),
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        return messages

    # --- invocations --------------------------------------------------------------------------

    def invoke(self, function: str, event: Any) -> Invocation:
        """A synchronous (RequestResponse) invocation, as API Gateway makes."""
        return self.pools[function].invoke(event)

    def invoke_async(self, function: str, event: Any) -> None:
        """An asynchronous (Event) invocation, as EventBridge makes: retried, then sent on."""
        spec = self.functions[function]
        config = spec.properties.get("EventInvokeConfig") or {}
        retries = int(config.get("MaximumRetryAttempts", DEFAULT_RETRIES))
        invocation = None
        for attempt in range(retries + 1):
            if self._stopping.is_set():
                return
            invocation = self.pools[function].invoke(event)
            if not invocation.failed:
                return
            self.log(f"! {function}: asynchronous invocation failed (attempt {attempt + 1} of {retries + 1})")
            if attempt < retries:
                self._stopping.wait(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)])
        assert invocation is not None
        self._on_failure(spec, event, invocation, retries + 1)

    def _on_failure(self, spec: FunctionSpec, event: Any, invocation: Invocation, attempts: int) -> None:
        sqs = self.client("sqs")
        dead_letter = spec.properties.get("DeadLetterQueue") or {}
        on_failure = ((spec.properties.get("EventInvokeConfig") or {}).get("DestinationConfig") or {}).get(
            "OnFailure"
        ) or {}
        sent = False
        if dead_letter.get("Type") == "SQS":
            sqs.send_message(
                QueueUrl=self._queue_url(dead_letter["TargetArn"]), MessageBody=json.dumps(event)
            )
            sent = True
        if on_failure.get("Type") == "SQS" and on_failure.get("Destination"):
            record = {
                "version": "1.0",
                "timestamp": iso_now(),
                "requestContext": {
                    "requestId": invocation.request_id,
                    "functionArn": f"{spec.arn}:$LATEST",
                    "condition": "RetriesExhausted",
                    "approximateInvokeCount": attempts,
                },
                "requestPayload": event,
                "responseContext": {
                    "statusCode": 200,
                    "executedVersion": "$LATEST",
                    "functionError": "Unhandled",
                },
                "responsePayload": invocation.error,
            }
            sqs.send_message(
                QueueUrl=self._queue_url(on_failure["Destination"]), MessageBody=json.dumps(record)
            )
            sent = True
        if not sent:
            self.log(
                f"! {spec.logical_id}: event dropped after {attempts} attempts (no on-failure destination)"
            )

    def _queue_url(self, arn: str) -> str:
        return f"{self.aws_url}/{ACCOUNT}/{arn.rsplit(':', 1)[-1]}"

    # --- Step Functions status changes ---------------------------------------------------------

    def _watch_executions(self) -> None:
        """LOCAL STAND-IN for what AWS does by itself: Step Functions puts an "Step Functions
        Execution Status Change" event on the account's default bus whenever an execution changes
        status. moto does not, so this loop watches the executions and puts those events."""
        sfn, events = self.client("stepfunctions"), self.client("events")
        while not self._stopping.wait(0.25):
            try:
                for machine in sfn.list_state_machines()["stateMachines"]:
                    pages = sfn.get_paginator("list_executions").paginate(
                        stateMachineArn=machine["stateMachineArn"]
                    )
                    for page in pages:
                        for execution in page["executions"]:
                            arn, status = execution["executionArn"], execution["status"]
                            if self._execution_status.get(arn) == status:
                                continue
                            self._execution_status[arn] = status
                            events.put_events(
                                Entries=[status_change_entry(sfn.describe_execution(executionArn=arn))]
                            )
            except Exception as error:  # noqa: BLE001 - keep watching; moto may be stopping
                if self._stopping.is_set():
                    return
                self.log(f"! execution watcher: {type(error).__name__}: {error}")

    # --- demo data ----------------------------------------------------------------------------

    def seed_demo(self) -> list[str]:
        """The demo user's project with processing messages in two conversations, each worked on
        by a RUNNING execution of the stand-in agent. Returns the processing message ids."""
        dynamodb, sfn = self.client("dynamodb"), self.client("stepfunctions")
        projects = self.table_name("ProjectsTable")
        messages = self.table_name("MessagesTable")
        dynamodb.put_item(
            TableName=projects,
            Item={
                "id": {"S": DEMO_PROJECT},
                "ownerId": {"S": DEMO_USER},
                "orgId": {"S": DEMO_ORG},
                "name": {"S": "Demo project"},
            },
        )
        processing = []
        for message_id, conversation, status in DEMO_MESSAGES:
            now = iso_now()
            item = {
                "id": {"S": message_id},
                "projectId": {"S": DEMO_PROJECT},
                "conversationId": {"S": conversation},
                "status": {"S": status},
                "createdAt": {"S": now},
                "updatedAt": {"S": now},
            }
            if status == "processing":
                processing.append(message_id)
                if self.agent_state_machine:
                    execution = sfn.start_execution(
                        stateMachineArn=self.agent_state_machine,
                        name=f"{message_id}-{uuid.uuid4().hex[:8]}",
                        input=json.dumps(
                            {
                                "messageId": message_id,
                                "projectId": DEMO_PROJECT,
                                "conversationId": conversation,
                            }
                        ),
                    )
                    item["executionArn"] = {"S": execution["executionArn"]}
            dynamodb.put_item(TableName=messages, Item=item)
        return processing

    def table_name(self, logical_id: str) -> str:
        return self.template.physical_name(logical_id)

    def demo_messages(self, project_id: str) -> list[dict[str, Any]]:
        """Every message of a project with its agent execution's status (the demo page's view).

        Local only: a Scan is fine for a handful of demo items; the service itself never scans."""
        dynamodb, sfn = self.client("dynamodb"), self.client("stepfunctions")
        items = []
        pages = dynamodb.get_paginator("scan").paginate(
            TableName=self.table_name("MessagesTable"),
            FilterExpression="projectId = :p",
            ExpressionAttributeValues={":p": {"S": project_id}},
        )
        for page in pages:
            for raw in page["Items"]:
                item = {name: next(iter(value.values())) for name, value in raw.items()}
                if "executionArn" in item:
                    with contextlib.suppress(Exception):
                        item["executionStatus"] = sfn.describe_execution(executionArn=item["executionArn"])[
                            "status"
                        ]
                items.append(item)
        return sorted(
            items, key=lambda item: (item.get("conversationId", ""), item.get("createdAt", ""), item["id"])
        )

    def mint(self, user_id: str, *, org_id: str | None = None, lifetime: int = 60) -> str:
        claims = session_claims(user_id, org_id=org_id, azp=self.origin, lifetime=lifetime)
        return self.signing_key.sign(claims)


def _yaml(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def _json_path(event: Any, path: str) -> Any:
    """EventBridge's InputPath: a simple $.a.b path."""
    value = event
    for part in path.removeprefix("$").strip(".").split("."):
        if part:
            value = value[part]
    return value


def scheduled_event(rule_arn: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [rule_arn],
        "detail": {},
    }


# EventBridge's event, whole, for a queue target. moto's default input template leaves out
# `account`, which EventBridge always sends.
EVENTBRIDGE_ENVELOPE = {
    "InputPathsMap": {
        name: f"$.{name}"
        for name in ("id", "detail-type", "source", "account", "time", "region", "resources", "detail")
    },
    "InputTemplate": (
        '{"version": "0", "id": "<id>", "detail-type": "<detail-type>", "source": "<source>", '
        '"account": "<account>", "time": <time>, "region": "<region>", "resources": <resources>, '
        '"detail": <detail>}'
    ),
}


@dataclass(frozen=True)
class SqsSource:
    """A function's SQS event source, with Lambda's defaults for what the template leaves out."""

    queue_arn: str
    queue_url: str
    batch_size: int
    batching_window_seconds: float
    maximum_concurrency: int
    reports_item_failures: bool

    @classmethod
    def of(cls, props: dict[str, Any], queue_url: str) -> SqsSource:
        scaling = props.get("ScalingConfig") or {}
        return cls(
            queue_arn=str(props["Queue"]),
            queue_url=queue_url,
            batch_size=int(props.get("BatchSize", 10)),
            batching_window_seconds=float(props.get("MaximumBatchingWindowInSeconds", 0)),
            # Without a maximum, Lambda starts with five batches at once and scales from there.
            maximum_concurrency=int(scaling.get("MaximumConcurrency", 5)),
            reports_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
        )


def succeeded_messages(
    messages: list[dict[str, Any]], invocation: Invocation, *, reports_item_failures: bool
) -> list[dict[str, Any]]:
    """The messages of a batch that Lambda deletes after the invocation.

    None when the invocation failed. With ReportBatchItemFailures, all but those the response
    lists in batchItemFailures (none listed: all); a listed identifier that is empty or not in
    the batch makes the whole batch a failure, as in Lambda. Without it, the response is not read.
    """
    if invocation.failed:
        return []
    result = invocation.result
    failures = result.get("batchItemFailures") if reports_item_failures and isinstance(result, dict) else None
    if not failures:
        return messages
    failed = {failure.get("itemIdentifier") if isinstance(failure, dict) else None for failure in failures}
    if not failed <= {message["MessageId"] for message in messages}:
        return []
    return [message for message in messages if message["MessageId"] not in failed]


def sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def status_change_entry(execution: dict[str, Any]) -> dict[str, Any]:
    """The PutEvents entry of AWS's "Step Functions Execution Status Change" event."""

    def millis(moment: Any) -> int | None:
        return int(moment.timestamp() * 1000) if isinstance(moment, datetime) else None

    detail = {
        "executionArn": execution["executionArn"],
        "stateMachineArn": execution["stateMachineArn"],
        "name": execution["name"],
        "status": execution["status"],
        "startDate": millis(execution.get("startDate")),
        "stopDate": millis(execution.get("stopDate")),
        "input": execution.get("input"),
        "output": execution.get("output"),
        "inputDetails": {"included": True},
        "outputDetails": {"included": True} if execution.get("output") is not None else None,
        "error": execution.get("error"),
        "cause": execution.get("cause"),
    }
    return {
        "Source": "aws.states",
        "DetailType": "Step Functions Execution Status Change",
        "Resources": [execution["executionArn"]],
        "Detail": json.dumps(detail),
        "EventBusName": "default",
    }
