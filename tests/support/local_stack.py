"""For the tests of the local stack: start `python -m devstack` as a process on free ports, wait
until it is up, stop it with Ctrl-C, as a user does; run a small template of a test's own in this
process; a small HTTP client; and which function of the template a sample event is meant for."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.constants import ROOT
from devstack.stack import DevStack, StackOptions
from devstack.template import Template

START_TIMEOUT = 60.0


def small_template(resources: str, environment: dict[str, str] | None = None) -> str:
    """A SAM template of `resources` (YAML, as under `Resources:`) whose functions run the module
    `handlers` that stack_of_template writes, each with `environment`."""
    lines = [
        'AWSTemplateFormatVersion: "2010-09-09"',
        "Transform: AWS::Serverless-2016-10-31",
        "Globals:",
        "  Function:",
        "    Runtime: python3.13",
        "    CodeUri: code/",
        "    Timeout: 10",
    ]
    if environment:
        lines += ["    Environment:", "      Variables:"]
        lines += [f"        {name}: {value}" for name, value in environment.items()]
    lines += ["Resources:", textwrap.indent(textwrap.dedent(resources).strip("\n"), "  ")]
    return "\n".join(lines) + "\n"


def stack_bus(suffix: str) -> str:
    """A small template's event bus `Bus`, named `<stack>-<suffix>`."""
    return f"""\
Bus:
  Type: AWS::Events::EventBus
  Properties:
    Name: !Sub "${{AWS::StackName}}-{suffix}"
"""


def table_keyed_by_id(logical_id: str, *, streamed: bool = False) -> str:
    """A small template's table keyed by a string `id` (where its functions record what reached
    them), with a stream of both images if `streamed`."""
    stream = "\n    StreamSpecification: {StreamViewType: NEW_AND_OLD_IMAGES}" if streamed else ""
    return f"""\
{logical_id}:
  Type: AWS::DynamoDB::Table
  Properties:
    BillingMode: PAY_PER_REQUEST
    AttributeDefinitions: [{{AttributeName: id, AttributeType: S}}]
    KeySchema: [{{AttributeName: id, KeyType: HASH}}]{stream}
"""


@contextmanager
def stack_of_template(directory: Path, template: str, handlers: str) -> Iterator[DevStack]:
    """The local stack in this process, of a small template and its module `handlers` (the
    template's CodeUri is `code/`), with no API and no demo data. moto's backends are shared with
    the other in-process stacks of the tests: such a template's names must be its own, and the
    CloudFormation stack (named as the local stack always is) goes when the stack stops, so that
    the next in-process stack of the same worker can create it."""
    (directory / "template.yaml").write_text(template)
    (directory / "code").mkdir()
    (directory / "code" / "handlers.py").write_text(textwrap.dedent(handlers))
    options = StackOptions(
        api_port=0,
        clerk_port=0,
        aws_port=0,
        template_path=directory / "template.yaml",
        seed=False,
        serve_api=False,
    )
    with DevStack(options, log=lambda _line: None) as running:
        try:
            yield running
        finally:
            running.client("cloudformation").delete_stack(StackName=running.template.stack_name)


def operator_aws_environment(stack: StackProcess) -> dict[str, str]:
    """The environment an operator runs `cancel-service` in against the stack: the standard AWS
    variables pointed at its moto, and none of the developer's profile."""
    environment = {
        **os.environ,
        "AWS_ENDPOINT_URL": stack.state["awsEndpoint"],
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    environment.pop("AWS_PROFILE", None)
    return environment


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Whether `condition` came true within `timeout` seconds (asked every 0.2 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: Any


def http(
    method: str, url: str, *, headers: dict[str, str] | None = None, body: Any = None, timeout: float = 15
) -> HttpAnswer:
    data = None if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
            status, raw, answer_headers = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        status, raw, answer_headers = error.code, error.read(), dict(error.headers)
    try:
        parsed: Any = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return HttpAnswer(status, answer_headers, parsed)


@dataclass
class StackProcess:
    """`python -m devstack` (what `make stack` runs) on free ports, in its own process group."""

    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen[str] | None = None
    state: dict[str, Any] = field(default_factory=dict)
    startup_seconds: float = 0.0
    _log: Any = None
    _dir: Any = None

    @property
    def origin(self) -> str:
        return str(self.state["origin"])

    @property
    def state_file(self) -> Path:
        return Path(self._dir.name) / "stack.json"

    @property
    def log_path(self) -> Path:
        return Path(self._dir.name) / "stack.log"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self._dir else ""

    def start(self) -> StackProcess:
        self._dir = tempfile.TemporaryDirectory(prefix="devstack-test-")
        self._log = self.log_path.open("w")
        started = time.monotonic()
        environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devstack",
                "--port",
                "0",
                "--clerk-port",
                "0",
                "--aws-port",
                "0",
                "--state-file",
                str(self.state_file),
                *self.extra_args,
            ],
            cwd=ROOT,
            env=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        deadline = started + START_TIMEOUT
        while not self.state_file.exists() or not self.state_file.read_text().strip():
            if self.process.poll() is not None:
                raise RuntimeError(f"the local stack exited with {self.process.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"the local stack did not start in {START_TIMEOUT:.0f} s:\n{self.output()}"
                )
            time.sleep(0.05)
        self.state = json.loads(self.state_file.read_text())
        self.startup_seconds = time.monotonic() - started
        return self

    def devstack(
        self, *args: str, stdin: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Another `python -m devstack ...` command, aimed at this stack."""
        return subprocess.run(
            [sys.executable, "-m", "devstack", "--state-file", str(self.state_file), *args],
            cwd=ROOT,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def worker_pids(self) -> list[int]:
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in children.read_text().split()]
        except OSError:
            return []

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20) -> int | None:
        """Ctrl-C, as a user stops it (a terminal signals the whole process group, the function
        workers too); returns the exit code."""
        code = None
        if self.process is not None:
            if self.process.poll() is None:
                os.killpg(self.process.pid, sig)
                try:
                    self.process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait()
            code = self.process.returncode
        if self._log is not None:
            self._log.close()
        return code

    def cleanup(self) -> None:
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> StackProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.cleanup()


def function_for_event(template: Template, event: dict[str, Any]) -> str | None:
    """The function of the template that `event` is meant for: the HttpApi route of an API Gateway
    event, the function whose EventBridge rule pattern matches an EventBridge event (moto's
    matcher, as the local stack's delivery uses), or the function fed by an SQS event's queue or a
    DynamoDB stream event's table."""
    from moto.events.models import EventPattern

    for spec in template.functions().values():
        for source in spec.events:
            props = source.properties
            if source.type == "HttpApi" and "routeKey" in event:
                route_key = f"{str(props.get('Method', 'ANY')).upper()} {props.get('Path', '$default')}"
                if event["routeKey"] in (route_key, "$default") or props.get("Path") is None:
                    return spec.logical_id
            elif source.type in ("EventBridgeRule", "CloudWatchEvent") and "detail-type" in event:
                if EventPattern.load(json.dumps(props.get("Pattern", {}))).matches_event(event):  # type: ignore[arg-type]
                    return spec.logical_id
            elif _source_of(source.type, props, event):
                return spec.logical_id
    return None


def _source_of(source_type: str, props: dict[str, Any], event: dict[str, Any]) -> bool:
    """Whether a scheduled, an SQS or a DynamoDB stream event comes from this event source of a
    function."""
    if source_type == "SQS":
        return _sqs_queue(event) == props.get("Queue")
    if source_type == "DynamoDB":
        return _stream_table(event) == str(props.get("Stream")).split("/stream/")[0]
    return source_type in ("Schedule", "ScheduleV2") and event.get("detail-type") == "Scheduled Event"


def _stream_table(event: dict[str, Any]) -> str | None:
    """The table whose stream a DynamoDB stream event's records come from (a stream's ARN is its
    table's with a label that changes each time the stream is turned on)."""
    records = event.get("Records") or [{}]
    if records[0].get("eventSource") != "aws:dynamodb":
        return None
    return str(records[0].get("eventSourceARN", "")).split("/stream/")[0]


def _sqs_queue(event: dict[str, Any]) -> str | None:
    """The queue an SQS event's records come from."""
    records = event.get("Records") or [{}]
    return records[0].get("eventSourceARN") if records[0].get("eventSource") == "aws:sqs" else None
