"""What the HTTP function itself costs in a warm container, with AWS out of the picture.

1. CPU per request: POST /api/messages/cancel for a project with one processing message, through
   the real handler, its token verified against a JWKS fetched once; `time.process_time` per
   request (every thread of the process), median over many requests. Target: at most 1 ms.
   AWS answers at once: the real boto3 clients the runtime builds get a `before-call` hook (the
   hook botocore's Stubber uses) that answers each operation by its name. Stubber itself
   answers from one queue in call order, which would fail as soon as the cancel core overlaps
   its GetItem and Query on the one DynamoDB client; answering by name works whatever the order.
   Everything botocore does before sending (parameter validation, serialization) is measured;
   signing, HTTP and parsing the answer are not.
2. Peak RSS of a fresh process (a new container) that imports the handler and cancels 1,000
   processing messages against moto_server (in this process, so moto's memory is not counted):
   the RSS before the cancel and the peak after it. Target: at most 100 MiB. The peak is the
   process's own high-water mark (VmHWM): Linux carries `ru_maxrss` over from the spawning
   process into the child across exec, so a child of this process (moto and all) starts with a
   `ru_maxrss` of this process's size; it is printed too, for reference.

Run: .venv/bin/python benchmarks/warm_overhead.py [--requests 2000] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from typing import Any
from unittest import mock

import boto3
from botocore.awsrequest import AWSResponse
from lambda_context import LambdaContext

from devstack.apigw import http_api_event
from devstack.clerk import JwksServer, SigningKey, session_claims
from stand_in_aws import (
    AWS_CREDENTIALS,
    EXECUTION_ARN,
    OWNER,
    PROJECT_ID,
    create_resources,
    function_environment,
    message_ids,
    seed_processing,
    start_moto,
)

CPU_TARGET_MS = 1.0
RSS_TARGET_MIB = 100.0
RSS_MESSAGES = 1000
CANCEL_PATH = "/api/messages/cancel"
MESSAGE_ID = message_ids(1)[0]
# Nothing listens here: a call that escaped the canned answers fails instead of reaching anything.
UNREACHABLE_AWS = "http://127.0.0.1:9"

_ONE_CANCEL = """
import json, os, resource, sys
from contextlib import redirect_stdout

def status_kib(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))

with open(os.devnull, "w") as function_output, redirect_stdout(function_output):
    from cancel_service.handlers import cancel_http
    from cancel_service.observability import logger

    logger.registered_handler.setStream(function_output)
    event = json.loads(sys.stdin.read())
    context = type("LambdaContext", (), {
        "function_name": "CancelFunction", "memory_limit_in_mb": 512, "aws_request_id": "rss",
        "invoked_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:CancelFunction"})()
    before_kib = status_kib("VmRSS")
    response = cancel_http.handler(event, context)
cancelled = len(json.loads(response["body"]).get("messageIds", []))
print(json.dumps({"status": response["statusCode"], "cancelled": cancelled,
                  "before_mib": before_kib / 1024, "peak_mib": status_kib("VmHWM") / 1024,
                  "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _canned_answer(operation: str, params: dict[str, Any]) -> dict[str, Any]:
    """What DynamoDB and EventBridge answer for a project of one processing message."""
    if operation == "GetItem":
        return {"Item": {"id": {"S": PROJECT_ID}, "ownerId": {"S": OWNER}}}
    if operation == "Query":
        item = {
            "id": {"S": MESSAGE_ID},
            "projectId": {"S": PROJECT_ID},
            "conversationId": {"S": "conv_a"},
            "executionArn": {"S": EXECUTION_ARN.format(MESSAGE_ID)},
        }
        return {"Items": [item], "Count": 1, "ScannedCount": 1}
    if operation == "PutEvents":
        entries = json.loads(params["body"])["Entries"]
        return {"FailedEntryCount": 0, "Entries": [{"EventId": f"event-{i}"} for i in range(len(entries))]}
    if operation == "UpdateItem":
        return {"Attributes": {"id": {"S": MESSAGE_ID}, "status": {"S": "cancelled"}}}
    raise AssertionError(f"the cancel made an unexpected call: {operation}")


def _answer_at_once(model: Any, params: dict[str, Any], **_kwargs: Any) -> tuple[AWSResponse, dict[str, Any]]:
    return AWSResponse(None, 200, {}, None), _canned_answer(model.name, params)  # type: ignore[arg-type]


@contextmanager
def clients_answering_at_once() -> Iterator[None]:
    """Every client built inside (by the runtime, on its first request) answers at once."""
    build = boto3.client

    def build_answering(*args: Any, **kwargs: Any) -> Any:
        client = build(*args, **kwargs)
        client.meta.events.register("before-call.*.*", _answer_at_once)
        return client

    with mock.patch.object(boto3, "client", build_answering):
        yield


def cancel_event(token: str) -> dict[str, Any]:
    return http_api_event(
        "POST",
        CANCEL_PATH,
        headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
        body=json.dumps({"projectId": PROJECT_ID}),
    )


def cpu_per_request(requests: int, profile: bool) -> tuple[list[float], list[float], pstats.Stats | None]:
    """CPU and wall milliseconds of each request, after a warm-up (which fetches the JWKS)."""
    signing_key = SigningKey.generate("ins_benchmark_key")
    token = signing_key.sign(session_claims(OWNER, lifetime=3600))
    context = LambdaContext()
    cpu_ms: list[float] = []
    wall_ms: list[float] = []
    profiler = cProfile.Profile() if profile else None
    with (
        JwksServer([signing_key]) as jwks,
        open(os.devnull, "w") as function_output,
        redirect_stdout(function_output),  # the function's logs and metrics, as Lambda prints them
    ):
        os.environ.update(function_environment(UNREACHABLE_AWS, jwks.url))
        from cancel_service.handlers import cancel_http
        from cancel_service.observability import logger

        logger.registered_handler.setStream(function_output)  # type: ignore[attr-defined]
        with clients_answering_at_once():
            for round_number in range(-max(requests // 20, 5), requests):  # negative: warm-up
                event = cancel_event(token)
                if profiler is not None and round_number >= 0:
                    profiler.enable()
                cpu_started, wall_started = time.process_time(), time.perf_counter()
                response = cancel_http.handler(event, context)
                cpu, wall = time.process_time() - cpu_started, time.perf_counter() - wall_started
                if profiler is not None:
                    profiler.disable()
                if response["statusCode"] != 200 or json.loads(response["body"]).get("messageIds") != [
                    MESSAGE_ID
                ]:
                    raise RuntimeError(f"the handler did not cancel the message: {response}")
                if round_number >= 0:
                    cpu_ms.append(cpu * 1000)
                    wall_ms.append(wall * 1000)
        if jwks.fetches != 1:
            raise RuntimeError(f"the JWKS was fetched {jwks.fetches} times, not once")
    stats = pstats.Stats(profiler, stream=sys.stdout) if profiler is not None else None
    return cpu_ms, wall_ms, stats


def peak_rss_of_one_cancel(messages: int) -> dict[str, float]:
    """A fresh interpreter cancels `messages` processing messages against moto_server."""
    moto, moto_url = start_moto()
    signing_key = SigningKey.generate("ins_benchmark_key")
    try:
        with JwksServer([signing_key]) as jwks:
            region = AWS_CREDENTIALS["AWS_REGION"]
            dynamodb = boto3.client("dynamodb", endpoint_url=moto_url, region_name=region)
            create_resources(dynamodb, boto3.client("events", endpoint_url=moto_url, region_name=region))
            seed_processing(dynamodb, messages)
            environment = {"PATH": os.environ.get("PATH", ""), **function_environment(moto_url, jwks.url)}
            event = cancel_event(signing_key.sign(session_claims(OWNER)))
            completed = subprocess.run(
                [sys.executable, "-c", _ONE_CANCEL],
                input=json.dumps(event),
                env=environment,
                capture_output=True,
                text=True,
                check=False,
                timeout=300,
            )
    finally:
        moto.stop()
    if completed.returncode != 0:
        raise RuntimeError(f"the cancel process failed:\n{completed.stderr}")
    result: dict[str, float] = json.loads(completed.stdout.splitlines()[-1])
    if result["status"] != 200 or result["cancelled"] != messages:
        raise RuntimeError(f"the cancel process did not cancel {messages} messages: {result}")
    return result


def verdict(value: float, target: float) -> str:
    return "within target" if value <= target else "OVER TARGET"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000, help="measured requests (2000)")
    parser.add_argument(
        "--messages", type=int, default=RSS_MESSAGES, help="messages of the RSS cancel (1000)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile the requests and print the top functions (of the thread that runs the handler:"
        " AWS calls made on an executor's threads show there as waiting)",
    )
    parser.add_argument("--quick", action="store_true", help="short run: 50 requests, 10 messages")
    options = parser.parse_args()
    requests, messages = (50, 10) if options.quick else (options.requests, options.messages)

    print(f"python {sys.version.split()[0]}")
    cpu_ms, wall_ms, stats = cpu_per_request(requests, options.profile)
    cpu = statistics.median(cpu_ms)
    print(
        f"CPU per request (N = 1, AWS answering at once, {requests:,} requests): median {cpu:.3f} ms, "
        f"p90 {statistics.quantiles(cpu_ms, n=10)[-1]:.3f} ms, wall median "
        f"{statistics.median(wall_ms):.3f} ms; target <= {CPU_TARGET_MS:g} ms: {verdict(cpu, CPU_TARGET_MS)}"
    )
    rss = peak_rss_of_one_cancel(messages)
    print(
        f"RSS of a fresh process cancelling {messages:,} messages (moto_server): before the cancel "
        f"{rss['before_mib']:.1f} MiB, peak {rss['peak_mib']:.1f} MiB; target <= {RSS_TARGET_MIB:g} MiB: "
        f"{verdict(rss['peak_mib'], RSS_TARGET_MIB)} (ru_maxrss {rss['ru_maxrss_mib']:.1f} MiB, "
        "counting the spawning process)"
    )
    if stats is not None:
        print(f"\nprofile of the {requests:,} measured requests (the handler's thread), by own time:")
        stats.sort_stats("tottime").print_stats(25)
        print("by cumulative time:")
        stats.sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    main()
