"""How events reach functions in the local stack, as EventBridge and Lambda deliver them.

- Rules: each EventBridge rule of the template (a function's EventBridgeRule event, or an
  AWS::Events::Rule resource targeting a queue) becomes a moto rule with the template's pattern
  on its bus, so moto's pattern matcher decides which events match, as EventBridge does. Its
  target is a queue: the template's own, or a delivery queue of the stack's whose poller hands
  each event to the function as an asynchronous invocation.
- Asynchronous invocations: Lambda's retries (EventInvokeConfig's MaximumRetryAttempts, seconds
  apart instead of minutes), then the OnFailure destination queue with Lambda's failure record.
- Schedules: `rate(...)` schedules run on a timer with their Input.
- SQS event sources: devstack.sqs_source; DynamoDB stream event sources: devstack.stream_source.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from devstack.aws import LocalAws
from devstack.background import Background
from devstack.constants import ACCOUNT, REGION
from devstack.demo import iso_now
from devstack.lambdas import FunctionPool, Invocation
from devstack.sqs_source import SqsSource, start_pollers
from devstack.stream_source import StreamSource, start_stream_pollers
from devstack.template import FunctionEvent, FunctionSpec, Template

if TYPE_CHECKING:
    from mypy_boto3_events.type_defs import InputTransformerTypeDef, TargetTypeDef

DEFAULT_RETRIES = 2  # Lambda's asynchronous invocation: two retries after the first attempt
RETRY_DELAYS = (1.0, 2.0)  # AWS waits about 1 and 2 minutes; locally, seconds
RULE_EVENT_TYPES = ("EventBridgeRule", "CloudWatchEvent")
SCHEDULE_EVENT_TYPES = ("Schedule", "ScheduleV2")

# EventBridge's event, whole, for a queue target. moto's default input template leaves out
# `account`, which EventBridge always sends.
EVENTBRIDGE_ENVELOPE: InputTransformerTypeDef = {
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


def parse_rate(expression: str) -> float | None:
    """Seconds between runs of `rate(N unit)`; None for cron() (not run on a timer locally)."""
    match = re.fullmatch(r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)", expression.strip())
    if not match:
        return None
    unit = {"minute": 60, "hour": 3600, "day": 86400}[match.group(2).rstrip("s")]
    return int(match.group(1)) * unit


class Delivery:
    def __init__(
        self,
        aws: LocalAws,
        template: Template,
        pools: Mapping[str, FunctionPool],
        background: Background,
        log: Callable[[str], None],
    ) -> None:
        self._aws, self._template, self._pools = aws, template, pools
        self._background, self._log = background, log
        self._events, self._sqs = aws.events(), aws.sqs()
        self.rules: list[str] = []  # what is wired, one line each, for the banner

    def wire(self) -> None:
        """Every event source of the template's functions (HttpApi routes are the gateway's), then
        its rules with queue targets."""
        for spec in (pool.spec for pool in self._pools.values()):
            for event in spec.events:
                if event.type in RULE_EVENT_TYPES:
                    self._rule_to_function(spec, event)
                elif event.type in SCHEDULE_EVENT_TYPES:
                    self._schedule(spec, event)
                elif event.type == "SQS":
                    source = SqsSource.of(
                        event.properties, self._aws.queue_url(str(event.properties["Queue"]))
                    )
                    start_pollers(
                        source, self._pools[spec.logical_id], self._aws, self._background, self._log
                    )
                elif event.type == "DynamoDB":
                    self._stream(spec, event)
                elif event.type != "HttpApi":
                    self._log(f"! {spec.logical_id}.{event.name}: event source {event.type} not run locally")
        for logical_id, resource in self._template.of_type("AWS::Events::Rule").items():
            self._rule_to_queues(logical_id, self._template.resolve(resource.get("Properties") or {}))

    def _stream(self, spec: FunctionSpec, event: FunctionEvent) -> None:
        """The table's stream as moto named it (the template's ARN names the table)."""
        table = str(event.properties["Stream"]).split(":table/", 1)[1].split("/", 1)[0]
        stream_arn = self._aws.dynamodb().describe_table(TableName=table)["Table"]["LatestStreamArn"]
        source = StreamSource.of({**event.properties, "Stream": stream_arn})
        start_stream_pollers(
            source,
            self._pools[spec.logical_id],
            self._aws.client("dynamodbstreams"),
            self._background,
            self._log,
        )
        self.rules.append(f"stream of {table} -> {spec.logical_id}")

    def _put_rule(
        self, rule: str, props: dict[str, Any], pattern: Any, target_id: str, queue_arn: str
    ) -> str:
        """A moto rule with the template's pattern, sending whole events to a queue; its bus."""
        bus = str(props.get("EventBusName", "default"))
        bus_name = bus.split("/")[-1] if bus.startswith("arn:") else bus
        pattern_text = pattern if isinstance(pattern, str) else json.dumps(pattern)
        state = props.get("State", "ENABLED")
        self._events.put_rule(Name=rule, EventBusName=bus_name, EventPattern=pattern_text, State=state)
        target: TargetTypeDef = {"Id": target_id, "Arn": queue_arn, "InputTransformer": EVENTBRIDGE_ENVELOPE}
        self._events.put_targets(Rule=rule, EventBusName=bus_name, Targets=[target])
        return bus_name

    def _rule_to_function(self, spec: FunctionSpec, event: FunctionEvent) -> None:
        props = event.properties
        rule = props.get("RuleName") or f"{spec.name}-{event.name}"[:64]
        queue_name = f"devstack-delivery-{rule}"[:80]
        queue_url = self._sqs.create_queue(QueueName=queue_name)["QueueUrl"]
        queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue_name}"
        bus_name = self._put_rule(rule, props, props.get("Pattern", {}), "function", queue_arn)
        self.rules.append(f"{rule} on {bus_name} -> {spec.logical_id}")
        self._background.spawn(self._poll_delivery, f"deliver-{rule}", queue_url, spec.logical_id)

    def _rule_to_queues(self, logical_id: str, props: dict[str, Any]) -> None:
        rule = self._template.physical_name(logical_id)
        for target in props.get("Targets", []):
            arn = str(target.get("Arn", ""))
            if not arn.startswith(f"arn:aws:sqs:{REGION}:{ACCOUNT}:"):
                self._log(f"! {logical_id}: target {arn} is not a queue; not run locally")
                continue
            bus_name = self._put_rule(rule, props, props["EventPattern"], str(target.get("Id", "queue")), arn)
            self.rules.append(f"{rule} on {bus_name} -> queue {arn.rsplit(':', 1)[-1]}")

    def _poll_delivery(self, queue_url: str, function: str) -> None:
        stopping = self._background.stopping
        while not stopping.is_set():
            try:
                batch = self._sqs.receive_message(
                    QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                )
            except Exception:  # noqa: BLE001 - moto is stopping
                if stopping.is_set():
                    return
                time.sleep(0.5)
                continue
            for message in batch.get("Messages", []):
                self._sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                self._background.submit(self.invoke_async, function, json.loads(message["Body"]))

    def _schedule(self, spec: FunctionSpec, event: FunctionEvent) -> None:
        props = event.properties
        expression = str(props.get("Schedule") or props.get("ScheduleExpression") or "")
        enabled = props.get("Enabled", True) and props.get("State", "ENABLED") == "ENABLED"
        every = parse_rate(expression)
        if every is None or not enabled or "Input" not in props:
            why = "disabled" if not enabled else "only rate() schedules with an Input run on a timer locally"
            self._log(
                f"  {spec.logical_id}.{event.name}: {expression} ({why}; use `python -m devstack invoke`)"
            )
            return

        def tick() -> None:
            while not self._background.stopping.wait(every):
                self._background.submit(self.invoke_async, spec.logical_id, json.loads(props["Input"]))

        self.rules.append(f"{expression} -> {spec.logical_id}")
        self._background.spawn(tick, f"schedule-{spec.logical_id}-{event.name}")

    def invoke_async(self, function: str, event: Any) -> None:
        """An asynchronous (Event) invocation, as EventBridge makes: retried, then sent on."""
        pool = self._pools[function]
        config = pool.spec.properties.get("EventInvokeConfig") or {}
        attempts = int(config.get("MaximumRetryAttempts", DEFAULT_RETRIES)) + 1
        for attempt in range(attempts):
            if self._background.stopping.is_set():
                return
            invocation = pool.invoke(event)
            if not invocation.failed:
                return
            self._log(f"! {function}: asynchronous invocation failed (attempt {attempt + 1} of {attempts})")
            if attempt + 1 < attempts:
                self._background.stopping.wait(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)])
        self._on_failure(pool.spec, event, invocation, attempts)

    def _on_failure(self, spec: FunctionSpec, event: Any, invocation: Invocation, attempts: int) -> None:
        destination = (spec.properties.get("EventInvokeConfig") or {}).get("DestinationConfig") or {}
        on_failure = destination.get("OnFailure") or {}
        if on_failure.get("Type") != "SQS" or not on_failure.get("Destination"):
            self._log(
                f"! {spec.logical_id}: event dropped after {attempts} attempts (no on-failure destination)"
            )
            return
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
        self._sqs.send_message(
            QueueUrl=self._aws.queue_url(on_failure["Destination"]), MessageBody=json.dumps(record)
        )
