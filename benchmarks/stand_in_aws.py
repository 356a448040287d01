"""AWS on this machine for the cancel benchmarks: moto_server, optionally behind a proxy that adds
a fixed delay to every call, with the template's tables and bus and a project of N processing
messages.

The proxy stands for the network and the service time of real AWS: every request waits
`delay` seconds and is then forwarded to moto. Requests wait concurrently (one thread per client
connection, HTTP/1.1 keep-alive), so a client that overlaps its calls gains what it would gain
against AWS.

Run as a script, it serves moto and the proxy from a process of its own (so their CPU does not
share a GIL with the function under measurement, as AWS does not share the Lambda's CPU), prints
their URLs as one JSON line and stops when its standard input closes.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from devstack.clerk import DEV_ISSUER, DEV_ORIGIN
from devstack.provision import create_tables
from devstack.template import Template, load_template

STACK_NAME = "benchmark"
TABLE_NAMES = {
    "MessagesTable": "benchmark-messages",
    "ProjectsTable": "benchmark-projects",
    "BulkStateTable": "benchmark-bulk-state",
    "AgeIndexTable": "benchmark-age-index",
    "StopPaceTable": "benchmark-stop-pace",
}
PROJECT_ID = "k57benchmark0001"
OWNER = "user_2benchmarkOwner"
EXECUTION_ARN = "arn:aws:states:us-east-1:123456789012:execution:agent:{}"
CONVERSATIONS = ("conv_a", "conv_b", "conv_c")
# Connections from the proxy to moto: moto answers one request at a time anyway (one GIL), so a
# bounded set is enough and keeps moto's thread count down when a client sends 1,000 at once.
UPSTREAM_CONNECTIONS = 64
# Headers that describe one hop, not the message: never forwarded.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}
)
AWS_CREDENTIALS = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "benchmark",
    "AWS_SECRET_ACCESS_KEY": "benchmark",
}


def function_environment(aws_endpoint: str, jwks_url: str) -> dict[str, str]:
    """The HTTP function's environment, as the tests give it, with AWS at `aws_endpoint`."""
    return {
        **AWS_CREDENTIALS,
        "AWS_ENDPOINT_URL": aws_endpoint,
        "POWERTOOLS_SERVICE_NAME": "cancel-service",
        "POWERTOOLS_METRICS_NAMESPACE": "StopTheAI",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "MESSAGES_TABLE": TABLE_NAMES["MessagesTable"],
        "PROJECTS_TABLE": TABLE_NAMES["ProjectsTable"],
        "BULK_STATE_TABLE": TABLE_NAMES["BulkStateTable"],
        "BULK_STATE_RETENTION_SECONDS": "259200",
        "EVENT_BUS_NAME": bus_name(),
        "CLERK_ISSUER": DEV_ISSUER,
        "CLERK_JWKS_URL": jwks_url,
        "CLERK_AUTHORIZED_PARTIES": DEV_ORIGIN,
    }


def bus_name() -> str:
    (logical_id,) = _template().of_type("AWS::Events::EventBus")
    return _template().physical_name(logical_id)


@cache
def _template() -> Template:
    return Template(stack_name=STACK_NAME, raw=load_template(), require_all=False)


def create_resources(dynamodb: Any, events: Any) -> None:
    """The template's tables and bus. The bus has no rules: what EventBridge delivers after it
    accepted an event is not part of a cancel's latency."""
    create_tables(dynamodb, TABLE_NAMES, _template().raw)
    events.create_event_bus(Name=bus_name())
    dynamodb.put_item(
        TableName=TABLE_NAMES["ProjectsTable"],
        Item={"id": {"S": PROJECT_ID}, "ownerId": {"S": OWNER}},
    )


def message_ids(count: int) -> list[str]:
    return [f"k58benchmark{index:05d}" for index in range(count)]


def seed_processing(dynamodb: Any, count: int) -> None:
    """Put the project's first `count` messages (back) to processing, as the agent left them."""
    items = [
        {
            "PutRequest": {
                "Item": {
                    "id": {"S": message_id},
                    "projectId": {"S": PROJECT_ID},
                    "conversationId": {"S": CONVERSATIONS[index % len(CONVERSATIONS)]},
                    "status": {"S": "processing"},
                    "executionArn": {"S": EXECUTION_ARN.format(message_id)},
                    "createdAt": {"S": "2026-11-24T11:59:00.000Z"},
                    "updatedAt": {"S": "2026-11-24T12:00:00.000Z"},
                }
            }
        }
        for index, message_id in enumerate(message_ids(count))
    ]
    for start in range(0, len(items), 25):  # BatchWriteItem's own limit
        pending: dict[str, Any] = {TABLE_NAMES["MessagesTable"]: items[start : start + 25]}
        for _ in range(10):
            pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            if not pending:
                break
        else:
            raise RuntimeError("moto left items unprocessed ten times in a row")


# --- the delaying proxy ---------------------------------------------------------------------------


class _UpstreamPool:
    """Keep-alive connections to moto, shared by the proxy's threads."""

    def __init__(self, url: str, size: int) -> None:
        parts = urlsplit(url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._idle: queue.LifoQueue[http.client.HTTPConnection] = queue.LifoQueue()
        for _ in range(size):
            self._idle.put(http.client.HTTPConnection(self._host, self._port, timeout=30))

    def forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = self._idle.get()
        try:
            for attempt in range(2):  # moto may have closed an idle connection: reconnect once
                try:
                    connection.request(method, path, body=body, headers=headers)
                    response = connection.getresponse()
                    return response.status, response.getheaders(), response.read()
                except (ConnectionError, http.client.HTTPException):
                    connection.close()
                    if attempt:
                        raise
            raise AssertionError("unreachable")
        finally:
            self._idle.put(connection)


def _proxy_handler(upstream: _UpstreamPool, delay: float) -> type[BaseHTTPRequestHandler]:
    class DelayingProxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so the client's connection pool is used as with AWS
        # The answer's headers and body are two writes: with Nagle's algorithm the second one
        # would wait for the client's delayed ACK (40 ms on Linux), a delay that is not the proxy's.
        disable_nagle_algorithm = True

        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            time.sleep(delay)
            headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP}
            status, answer_headers, answer = upstream.forward(self.command, self.path, headers, body)
            self.send_response(status)
            for name, value in answer_headers:
                if name.lower() not in HOP_BY_HOP | {"content-length", "server", "date"}:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the benchmark prints what it measured."""

    return DelayingProxy


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 2048  # a client may open a thousand connections at once


def start_proxy(upstream_url: str, delay: float) -> ThreadingHTTPServer:
    server = _ProxyServer(
        ("127.0.0.1", 0), _proxy_handler(_UpstreamPool(upstream_url, UPSTREAM_CONNECTIONS), delay)
    )
    threading.Thread(target=server.serve_forever, daemon=True, name="delaying-proxy").start()
    return server


def start_moto() -> tuple[Any, str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


# --- moto and the proxy in a process of their own -------------------------------------------------


@dataclass(frozen=True)
class AwsUrls:
    moto: str  # straight to moto: seeding, which is not measured
    proxy: str  # through the delay: what is measured


@contextmanager
def stand_in_aws(delay: float) -> Iterator[AwsUrls]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--delay-ms", str(delay * 1000)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the stand-in AWS process exited with {process.wait()}")
        urls = json.loads(line)
        yield AwsUrls(moto=urls["moto"], proxy=urls["proxy"])
    finally:
        assert process.stdin is not None
        process.stdin.close()  # its signal to stop
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--delay-ms", type=float, default=20.0, help="delay added to every AWS call")
    options = parser.parse_args()
    moto, moto_url = start_moto()
    proxy = start_proxy(moto_url, options.delay_ms / 1000)
    host, port = proxy.server_address[:2]
    print(json.dumps({"moto": moto_url, "proxy": f"http://{host!s}:{port}"}), flush=True)
    sys.stdin.read()  # until the benchmark closes it (or exits)
    proxy.shutdown()
    moto.stop()


if __name__ == "__main__":
    main()
