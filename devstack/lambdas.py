"""Lambda functions as local processes: a pool of warm containers per function.

Each container is a `devstack.worker` process with exactly the environment the function would
have in Lambda (the template's variables plus the runtime's own AWS_* variables), so module
state, clients and caches live per container, as in Lambda. A container runs one invocation
at a time; concurrent invocations start more containers (up to a cap), idle ones are reused.
A timeout kills the container, as Lambda does.
"""

from __future__ import annotations

import json
import os
import platform
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from devstack.constants import LOCAL_CREDENTIAL, REGION, ROOT
from devstack.template import FunctionSpec

LogSink = Callable[[str, str], None]  # (function logical id, line)


@dataclass
class Invocation:
    request_id: str
    result: Any = None
    error: dict[str, Any] | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


def runtime_environment(
    spec: FunctionSpec, aws_endpoint: str, overrides: dict[str, str] | None = None
) -> dict[str, str]:
    """What a Lambda process of `spec` sees: the runtime's variables, then the template's.

    The caller's own environment does not leak in (no AWS profile, no credentials): only PATH and
    locale, like `sam local invoke`. `overrides` are --env-vars values, applied (as SAM does) only
    to variables the template declares.
    """
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIAL,
        "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIAL,
        "AWS_SESSION_TOKEN": LOCAL_CREDENTIAL,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_ENDPOINT_URL": aws_endpoint,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "LAMBDA_TASK_ROOT": str(spec.code_dir),
        # As `sam local` does: tells Powertools' Tracer that there is no X-Ray daemon here.
        "AWS_SAM_LOCAL": "true",
        "DEVSTACK_FUNCTION_ARN": spec.arn,
    }
    environment.update(spec.environment)
    for name, value in (overrides or {}).items():
        if name in spec.environment:
            environment[name] = value
    return environment


def load_env_vars(path: str | None, logical_id: str) -> dict[str, str]:
    """SAM's --env-vars file: {"Parameters": {...all functions...}, "<LogicalId>": {...}}."""
    if not path:
        return {}
    data = json.loads(open(path).read())  # noqa: SIM115 - small file, read once
    values: dict[str, Any] = {**data.get("Parameters", {}), **data.get(logical_id, {})}
    return {name: str(value) for name, value in values.items()}


class Container:
    """One warm worker process."""

    def __init__(self, spec: FunctionSpec, environment: dict[str, str], sink: LogSink) -> None:
        self.spec = spec
        self._sink = sink
        self._answers: queue.Queue[str | None] = queue.Queue()
        self._current: Invocation | None = None
        self._report_seen = threading.Event()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devstack.worker", str(spec.code_dir), spec.handler],
            cwd=ROOT,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            # Out of the terminal's process group: Ctrl-C is the stack's to handle, and the stack
            # stops its workers itself (closing stdin), so an invocation in flight ends as it would.
            process_group=0,
        )
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        threading.Thread(target=self._read_answers, args=(self.process.stdout,), daemon=True).start()
        threading.Thread(target=self._read_logs, args=(self.process.stderr,), daemon=True).start()

    def _read_answers(self, stream: IO[str]) -> None:
        for line in stream:
            self._answers.put(line)
        self._answers.put(None)

    def _read_logs(self, stream: IO[str]) -> None:
        for raw in stream:
            line = raw.rstrip("\n")
            self._sink(self.spec.logical_id, line)
            current = self._current
            # The REPORT line ends an invocation's log: `invoke` returns after it, so that the
            # invocation's lines are printed before whatever its caller prints next.
            if current is not None and line.startswith(f"REPORT RequestId: {current.request_id}"):
                self._report_seen.set()
        self._report_seen.set()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def invoke(self, event: Any, timeout: float) -> Invocation:
        assert self.process.stdin is not None
        invocation = Invocation(request_id=str(uuid.uuid4()))
        self._current = invocation
        self._report_seen.clear()
        deadline_ms = int((time.time() + timeout) * 1000)
        request = {"requestId": invocation.request_id, "event": event, "deadlineMs": deadline_ms}
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            line = self._answers.get(timeout=timeout)
        except queue.Empty:
            line = None
            self.kill()
            message = f"Task timed out after {timeout:.2f} seconds"
            invocation.error = {"errorMessage": message, "errorType": "Sandbox.Timedout"}
            self._sink(self.spec.logical_id, f"{time.strftime('%FT%T')} {invocation.request_id} {message}")
        except (BrokenPipeError, OSError):
            line = None
        if invocation.error is None:
            if line is None:
                invocation.error = {
                    "errorMessage": "Runtime exited without providing a reason",
                    "errorType": "Runtime.ExitError",
                }
            else:
                answer = json.loads(line)
                invocation.result, invocation.error = answer.get("result"), answer.get("error")
        self._report_seen.wait(timeout=1.0)
        self._current = None
        return invocation

    def kill(self) -> None:
        if self.alive:
            self.process.kill()
        self.process.wait(timeout=5)

    def close(self) -> None:
        if self.alive:
            assert self.process.stdin is not None
            self.process.stdin.close()  # the worker's loop ends: a clean shutdown
            try:
                self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.kill()


class FunctionPool:
    """The containers of one function: reused when idle, started on demand up to `max_containers`."""

    def __init__(
        self,
        spec: FunctionSpec,
        environment: dict[str, str],
        sink: LogSink,
        max_containers: int = 10,
    ) -> None:
        self.spec = spec
        self.environment = environment
        self._sink = sink
        self._idle: list[Container] = []
        self._all: list[Container] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_containers)
        self._closed = False

    def invoke(self, event: Any) -> Invocation:
        with self._slots:
            with self._lock:
                if self._closed:
                    raise RuntimeError("the local stack is stopping")
                container = self._idle.pop() if self._idle else None
                if container is None:
                    container = Container(self.spec, self.environment, self._sink)
                    self._all.append(container)
            invocation = container.invoke(event, float(self.spec.timeout))
            with self._lock:
                if container.alive and not self._closed:
                    self._idle.append(container)
                else:
                    container.kill()
                    if container in self._all:
                        self._all.remove(container)
            return invocation

    def warm_up(self) -> None:
        """Start one container ahead of the first request (its import runs now, not then)."""
        with self._lock:
            if not self._all:
                container = Container(self.spec, self.environment, self._sink)
                self._all.append(container)
                self._idle.append(container)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            containers, self._all, self._idle = list(self._all), [], []
        for container in containers:
            container.close()


def host_architecture() -> str:
    return "arm64" if platform.machine().lower() in ("arm64", "aarch64") else "x86_64"
