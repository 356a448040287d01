"""What Stops and bulks cost in AWS requests, from the calls the code makes: counted on the local
stack (every function of the template, moto for AWS), then priced at list prices.

Each scenario seeds processing messages, each with a RUNNING stand-in agent execution, sends the
Stop (or the bulk request), waits until every agent is stopped and every execution end handled,
and counts:
- every AWS call a function made (moto sees them; a function's calls carry Lambda's `exec-env`
  user agent, the local stack's own plumbing does not), by service and operation, with the
  EventBridge entries of each PutEvents and the attributes each UpdateItem sets;
- every function invocation and its duration.
What AWS does between the functions is counted from those: each cancel event with an execution
is one SQS SendMessage (the rule's delivery to the stop queue), each stopper invocation one
ReceiveMessage and one DeleteMessageBatch (Lambda's poller).

DynamoDB capacity units follow DynamoDB's rules, from the template's indexes: a write is 1 unit
for the item (under 1 KB) plus, per global secondary index, 2 when it changes the index's key
(delete and put) and 1 when it changes only a projected attribute; an (eventually consistent)
read is half a unit per 4 KB started, the answer's size standing for the items'. Step Functions
bills state transitions, not StopExecution calls: a stop costs nothing there.

Prices: us-east-1 list prices (see PRICES). Durations are the local stack's (warm, against
moto): a deployed function's differ, so Lambda's duration line is an order of magnitude.

Run: .venv/bin/python benchmarks/stop_costs.py [--stop-sizes 2,20] [--bulk-sizes 1000] [--quick]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import re
import threading
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from devstack.constants import CANCEL_PATH
from devstack.demo import iso_now
from devstack.lambdas import FunctionPool, Invocation
from devstack.stack import DevStack, StackOptions
from devstack.template import Template

# us-east-1 list prices, USD.
PRICES = {
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second_arm64": 0.0000133334,
    "eventbridge_event": 1.00 / 1e6,  # a custom event entry (per 64 KB)
    "sqs_request": 0.40 / 1e6,  # standard queue (per 64 KB)
    "dynamodb_write_unit": 0.625 / 1e6,  # on-demand
    "dynamodb_read_unit": 0.125 / 1e6,
}
OWNER = "user_2costOwner000000000000"
GIVE_UP_SECONDS = 600.0
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")
_SET_ATTRIBUTE = re.compile(r"([#\w]+)\s*=")


@dataclass
class Ledger:
    """What the functions did, counted while `counting` is set."""

    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    events: int = 0
    stop_events: int = 0  # cancel events with an execution: each one an SQS send to the stop queue
    write_units: float = 0.0
    read_units: float = 0.0
    invocations: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    lock: threading.Lock = field(default_factory=threading.Lock)
    counting: bool = False

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.invocations.clear()
            self.seconds.clear()
            self.events = self.stop_events = 0
            self.write_units = self.read_units = 0.0
            self.counting = True


class WriteUnits:
    """Write units of an UpdateItem, from the template's tables and their indexes."""

    def __init__(self, template: Template) -> None:
        self.indexes = {
            template.physical_name(logical_id): [
                (
                    {key["AttributeName"] for key in index["KeySchema"]},
                    set(index["Projection"].get("NonKeyAttributes", [])),
                )
                for index in table["Properties"].get("GlobalSecondaryIndexes", [])
            ]
            for logical_id, table in template.of_type("AWS::DynamoDB::Table").items()
        }

    def of_update(self, table: str, changed: set[str]) -> int:
        units = 1
        for keys, projected in self.indexes.get(table, []):
            if changed & keys:
                units += 2
            elif changed & projected:
                units += 1
        return units


def _record(ledger: Ledger, rules: WriteUnits, environ: dict[str, Any], body: bytes, answer: bytes) -> None:
    service_match = _CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    service = service_match.group(1) if service_match else "?"
    operation = environ.get("HTTP_X_AMZ_TARGET", "").rsplit(".", 1)[-1] or "?"
    request = json.loads(body) if body.startswith(b"{") else {}
    with ledger.lock:
        ledger.calls[(service, operation)] += 1
        if operation == "PutEvents":
            entries = request.get("Entries", [])
            ledger.events += len(entries)
            ledger.stop_events += sum(
                1
                for entry in entries
                if entry.get("DetailType") == "Message Cancel Requested"
                and "executionArn" in json.loads(entry.get("Detail", "{}"))
            )
        elif operation == "UpdateItem":
            names = request.get("ExpressionAttributeNames", {})
            expression = request.get("UpdateExpression", "").removeprefix("SET ")
            changed = {names.get(name, name) for name in _SET_ATTRIBUTE.findall(expression)}
            ledger.write_units += rules.of_update(request.get("TableName", ""), changed)
        elif operation == "GetItem":
            ledger.read_units += 1.0 if request.get("ConsistentRead") else 0.5
        elif operation == "Query":
            ledger.read_units += max(1, math.ceil(len(answer) / 4096)) * 0.5


def count_calls(ledger: Ledger, rules: WriteUnits) -> None:
    """moto's server application, counting what the functions ask of it."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    serve = DomainDispatcherApplication.__call__

    def counted(self: Any, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not ledger.counting or "exec-env/AWS_Lambda" not in environ.get("HTTP_USER_AGENT", ""):
            return serve(self, environ, start_response)  # type: ignore[no-any-return]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        answer = b"".join(serve(self, environ, start_response))
        _record(ledger, rules, environ, body, answer)
        return [answer]

    DomainDispatcherApplication.__call__ = counted  # type: ignore[method-assign]


def count_invocations(ledger: Ledger) -> None:
    invoke = FunctionPool.invoke

    def counted(self: FunctionPool, event: Any) -> Invocation:
        started = time.perf_counter()
        invocation = invoke(self, event)
        if ledger.counting:
            with ledger.lock:
                ledger.invocations[self.spec.logical_id] += 1
                ledger.seconds[self.spec.logical_id] += time.perf_counter() - started
        return invocation

    FunctionPool.invoke = counted  # type: ignore[method-assign]


def seed(stack: DevStack, projects: int, per_project: int) -> tuple[list[str], list[str]]:
    """Projects of OWNER with processing messages, each with a RUNNING agent; (projects, executions)."""
    dynamodb, sfn = stack.client("dynamodb"), stack.client("stepfunctions")
    project_ids, executions = [], []
    for _ in range(projects):
        project_id = f"k57cost{uuid.uuid4().hex[:12]}"
        project_ids.append(project_id)
        dynamodb.put_item(
            TableName=stack.table_name("ProjectsTable"),
            Item={"id": {"S": project_id}, "ownerId": {"S": OWNER}},
        )
        for _ in range(per_project):
            message_id = f"k58cost{uuid.uuid4().hex[:16]}"
            arn = sfn.start_execution(stateMachineArn=stack.agent_state_machine, name=message_id, input="{}")[
                "executionArn"
            ]
            executions.append(arn)
            now = iso_now()
            dynamodb.put_item(
                TableName=stack.table_name("MessagesTable"),
                Item={
                    "id": {"S": message_id},
                    "projectId": {"S": project_id},
                    "conversationId": {"S": "conv_cost"},
                    "status": {"S": "processing"},
                    "executionArn": {"S": arn},
                    "createdAt": {"S": now},
                    "updatedAt": {"S": now},
                },
            )
    return project_ids, executions


def wait_until_stopped(stack: DevStack, ledger: Ledger, executions: list[str]) -> None:
    """Every agent ABORTED, and each execution end handled by its function."""
    sfn, waiting = stack.client("stepfunctions"), set(executions)
    deadline = time.monotonic() + GIVE_UP_SECONDS
    while time.monotonic() < deadline:
        waiting = {arn for arn in waiting if sfn.describe_execution(executionArn=arn)["status"] != "ABORTED"}
        if not waiting and ledger.invocations["ExecutionStatusFunction"] >= len(executions):
            settle(ledger)
            return
        time.sleep(0.5)
    raise RuntimeError(f"{len(waiting)} agents still running after {GIVE_UP_SECONDS:.0f} s")


def settle(ledger: Ledger) -> None:
    """Until no function has been invoked for a few seconds: nothing of a scenario is left over."""
    seen = -1
    while seen != sum(ledger.invocations.values()):
        seen = sum(ledger.invocations.values())
        time.sleep(3.0)


def stop(stack: DevStack, project_id: str) -> None:
    request = urllib.request.Request(  # noqa: S310 - the local stack on loopback
        f"{stack.origin}{CANCEL_PATH}",
        data=json.dumps({"projectId": project_id}).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {stack.mint(OWNER)}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        json.loads(response.read())


def bulk(stack: DevStack, project_ids: list[str]) -> None:
    stack.client("events").put_events(
        Entries=[
            {
                "EventBusName": stack.template.physical_name("CancelBus"),
                "Source": "app.operator",
                "DetailType": "Bulk Cancel Requested",
                "Detail": json.dumps({"projectIds": project_ids, "reason": "cost_benchmark"}),
            }
        ]
    )


@dataclass
class Bill:
    lines: dict[str, float]
    counts: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.lines.values())


def bill(ledger: Ledger, memory_mb: dict[str, int]) -> Bill:
    """The counted scenario at list prices, USD."""
    invocations = sum(ledger.invocations.values())
    gb_seconds = sum(seconds * memory_mb[name] / 1024 for name, seconds in ledger.seconds.items())
    stopper_invocations = sum(
        count for function, count in ledger.invocations.items() if function.endswith("StopAgentFunction")
    )
    sqs_requests = ledger.stop_events + 2 * stopper_invocations
    return Bill(
        lines={
            "Lambda requests": invocations * PRICES["lambda_request"],
            "Lambda duration": gb_seconds * PRICES["lambda_gb_second_arm64"],
            "EventBridge events": ledger.events * PRICES["eventbridge_event"],
            "SQS requests": sqs_requests * PRICES["sqs_request"],
            "DynamoDB writes": ledger.write_units * PRICES["dynamodb_write_unit"],
            "DynamoDB reads": ledger.read_units * PRICES["dynamodb_read_unit"],
            "Step Functions": 0.0,
        },
        counts={
            "invocations": invocations,
            "GB-s": gb_seconds,
            "events": ledger.events,
            "SQS requests": sqs_requests,
            "write units": ledger.write_units,
            "read units": ledger.read_units,
            "StopExecution calls": ledger.calls[("states", "StopExecution")],
        },
    )


def report(name: str, ledger: Ledger, result: Bill, scale: float, scale_name: str) -> None:
    by_function = ", ".join(
        f"{function} {count} ({ledger.seconds[function] / count * 1000:.0f} ms each)"
        for function, count in sorted(ledger.invocations.items())
    )
    calls = ", ".join(
        f"{service}:{operation} {count}" for (service, operation), count in sorted(ledger.calls.items())
    )
    counts = ", ".join(f"{key} {value:g}" for key, value in result.counts.items())
    print(f"\n{name}")
    print(f"  invocations: {by_function}")
    print(f"  AWS calls:   {calls}")
    print(f"  counted:     {counts}")
    print(f"  cost {scale_name}:")
    for line, usd in result.lines.items():
        print(f"    {line:<20} ${usd * scale:,.2f}")
    print(f"    {'total':<20} ${result.total * scale:,.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stop-sizes", default="2,20", help="messages per Stop (default 2,20)")
    parser.add_argument("--bulk-sizes", default="1000", help="messages per bulk (default 1000)")
    parser.add_argument("--quick", action="store_true", help="a Stop of 2 messages only (the tests)")
    args = parser.parse_args()
    if args.quick:
        args.stop_sizes, args.bulk_sizes = "2", ""
    ledger = Ledger()
    count_invocations(ledger)
    options = StackOptions(
        api_port=0,
        clerk_port=0,
        aws_port=0,
        seed=False,
        # Faster stops for the run; the calls per stop are the same at any rate.
        parameter_overrides={"StopExecutionsPerSecond": "400"},
    )
    stack = DevStack(options, log=lambda _line: None)
    # The counter must be in place before moto's server starts serving.
    count_calls(ledger, WriteUnits(Template({}, require_all=False)))
    with stack:
        memory_mb = {spec.logical_id: spec.memory for spec in stack.functions.values()}
        for size in (int(n) for n in args.stop_sizes.split(",")):
            [project], executions = seed(stack, 1, size)
            ledger.reset()
            stop(stack, project)  # warms the containers up; not reported
            wait_until_stopped(stack, ledger, executions)
            settle(ledger)
            [project], executions = seed(stack, 1, size)
            ledger.reset()
            stop(stack, project)
            wait_until_stopped(stack, ledger, executions)
            ledger.counting = False
            report(f"A Stop of {size} messages", ledger, bill(ledger, memory_mb), 1e6, "per million Stops")
        for size in (int(n) for n in args.bulk_sizes.split(",") if n):
            projects = max(1, size // 100)
            project_ids, executions = seed(stack, projects, size // projects)
            ledger.reset()
            bulk(stack, project_ids)
            wait_until_stopped(stack, ledger, executions)
            ledger.counting = False
            report(
                f"A bulk of {size} messages ({projects} projects of {size // projects})",
                ledger,
                bill(ledger, memory_mb),
                100_000 / size,
                "for 100,000 messages (scaled linearly)",
            )


if __name__ == "__main__":
    main()
