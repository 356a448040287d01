"""Latency of one cancel when every AWS call takes time, against what its AWS calls allow.

moto_server runs behind a proxy that delays every call (default 20 ms) in a process of its own;
the project has N processing messages, put back to processing before every sample. Measured
side by side, the variants interleaved so machine noise hits them alike:

    handler         POST /api/messages/cancel through the real HTTP handler, in this process, with
                    a signed session token (JWKS already cached), warm like a reused container
    one-at-a-time   the cancel's AWS calls, each waiting for the one before: GetItem, the Query
                    pages, PutEvents per 10 messages, one conditional UpdateItem per message
    all-in-flight   the same calls with every independent call in flight at once: GetItem with the
                    first Query, then all PutEvents, then all UpdateItems (read, publish, write)

all-in-flight is the floor the cancel's rules allow (events before writes); one-at-a-time is what
the same calls cost with no overlap at all. Printed: medians in milliseconds and their ratios.

moto itself spends milliseconds of CPU on every call (an UpdateItem: about 5 ms on an idle core,
several times that on a busy one) and answers one call at a time; from some N on, that time, not
the delay, is what all-in-flight and the handler wait for, and their ratio tends to 1; a longer
`--delay-ms` (100, say) keeps the delay the larger part further up. A round of N = 1,000 takes
minutes, hence its own, smaller sample count.

Run: .venv/bin/python benchmarks/cancel_latency.py [--delay-ms 20] [--repeat 3] [--repeat-large 1]
     [--sizes 1,10,100,1000] [--markdown] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stdout
from typing import Any

import boto3
from botocore.config import Config
from cancel_calls import CancelCalls, batches, cancel_clients
from lambda_context import LambdaContext

from devstack.apigw import http_api_event
from devstack.clerk import JwksServer, SigningKey, session_claims
from stand_in_aws import (
    AWS_CREDENTIALS,
    OWNER,
    PROJECT_ID,
    create_resources,
    function_environment,
    seed_processing,
    stand_in_aws,
)

SIZES = (1, 10, 100, 1000)
QUICK_SIZES = (1, 10)
LARGE = 1000  # from here on, every cancel is dominated by moto's own time per call (see below)
CANCEL_PATH = "/api/messages/cancel"
VARIANTS = ("handler", "one-at-a-time", "all-in-flight")


class Variants:
    """Each variant cancels the project's N processing messages and returns how many it cancelled."""

    def __init__(self, proxy_url: str, signing_key: SigningKey, max_in_flight: int) -> None:
        self._plain = cancel_clients(proxy_url, Config())
        self._wide = cancel_clients(proxy_url, Config(max_pool_connections=max_in_flight))
        self._pool = ThreadPoolExecutor(max_workers=max_in_flight)
        from cancel_service.handlers import cancel_http

        self._handler = cancel_http.handler
        self._context = LambdaContext()
        self._signing_key = signing_key

    def close(self) -> None:
        self._pool.shutdown()

    def prepared(self, name: str) -> Callable[[], int]:
        """The variant, ready to run: what a caller does before its request (signing its token)
        is not part of the measure."""
        if name == "handler":
            return self._handler_with(self._request_event())
        variant: Callable[[], int] = {
            "one-at-a-time": self.one_at_a_time,
            "all-in-flight": self.all_in_flight,
        }[name]
        return variant

    def _request_event(self) -> dict[str, Any]:
        token = self._signing_key.sign(session_claims(OWNER))
        return http_api_event(
            "POST",
            CANCEL_PATH,
            headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
            body=json.dumps({"projectId": PROJECT_ID}),
        )

    def _handler_with(self, event: dict[str, Any]) -> Callable[[], int]:
        def handler() -> int:
            response = self._handler(event, self._context)
            body = json.loads(response["body"])
            if response["statusCode"] != 200:
                raise RuntimeError(f"the handler answered {response['statusCode']}: {body}")
            return len(body.get("messageIds", []))

        return handler

    def one_at_a_time(self) -> int:
        calls = CancelCalls(*self._plain)
        calls.read_project()
        items, next_key = calls.query_page(None)
        while next_key:
            page, next_key = calls.query_page(next_key)
            items.extend(page)
        for batch in batches(items):
            calls.publish(batch)
        return sum(calls.write(item) for item in items)

    def all_in_flight(self) -> int:
        calls = CancelCalls(*self._wide)
        project = self._pool.submit(calls.read_project)
        items, next_key = calls.query_page(None)
        while next_key:  # each page needs the one before it
            page, next_key = calls.query_page(next_key)
            items.extend(page)
        project.result()
        list(self._pool.map(calls.publish, batches(items)))
        return sum(self._pool.map(calls.write, items))


def measure(
    variants: Variants, seed: Callable[[int], None], repeats: dict[int, int]
) -> dict[tuple[int, str], list[float]]:
    """`repeats`: samples per variant, by N."""
    samples: dict[tuple[int, str], list[float]] = {(n, name): [] for n in repeats for name in VARIANTS}
    for round_number in range(max(repeats.values())):
        for n in [n for n, count in repeats.items() if round_number < count]:
            # Rotate the order so that no variant always runs first (or right after a seed).
            shift = round_number % len(VARIANTS)
            for name in VARIANTS[shift:] + VARIANTS[:shift]:
                seed(n)
                variant = variants.prepared(name)
                started = time.perf_counter()
                cancelled = variant()
                samples[n, name].append((time.perf_counter() - started) * 1000)
                if cancelled != n:
                    raise RuntimeError(f"{name} cancelled {cancelled} of {n} messages")
    return samples


def table(samples: dict[tuple[int, str], list[float]], sizes: Sequence[int], markdown: bool) -> list[str]:
    header = [
        "N",
        "handler ms",
        "one-at-a-time ms",
        "all-in-flight ms",
        "handler/all-in-flight",
        "one-at-a-time/handler",
    ]
    rows = []
    for n in sizes:
        handler, serial, floor = (statistics.median(samples[n, name]) for name in VARIANTS)
        rows.append(
            [
                f"{n:,}",
                f"{handler:.0f}",
                f"{serial:.0f}",
                f"{floor:.0f}",
                f"{handler / floor:.2f}",
                f"{serial / handler:.2f}",
            ]
        )
    if markdown:
        return [
            "| " + " | ".join(header) + " |",
            "|" + "|".join("---:" for _ in header) + "|",
            *("| " + " | ".join(row) + " |" for row in rows),
        ]
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) for i in range(len(header))]
    return [
        "  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True))
        for line in [header, *rows]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--delay-ms", type=float, default=20.0, help="delay added to every AWS call (20)")
    parser.add_argument("--repeat", type=int, default=3, help="samples per variant and N below 1,000 (3)")
    parser.add_argument(
        "--repeat-large",
        type=int,
        default=1,
        help="samples per variant for N of 1,000 and more (1): one round of them takes minutes",
    )
    parser.add_argument("--sizes", type=lambda text: [int(n) for n in text.split(",")], default=list(SIZES))
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--quick", action="store_true", help="short run: N = 1 and 10, one sample")
    options = parser.parse_args()
    sizes: list[int] = list(QUICK_SIZES) if options.quick else options.sizes
    repeats = {
        n: 1 if options.quick else options.repeat_large if n >= LARGE else options.repeat for n in sizes
    }

    started = time.monotonic()
    signing_key = SigningKey.generate("ins_benchmark_key")
    with (
        JwksServer([signing_key]) as jwks,
        stand_in_aws(options.delay_ms / 1000) as urls,
        open(os.devnull, "w") as function_output,
    ):
        # The function's environment, as Lambda sets it before the first import of the handler.
        os.environ.update(function_environment(urls.proxy, jwks.url))
        region = AWS_CREDENTIALS["AWS_REGION"]
        direct = boto3.client("dynamodb", endpoint_url=urls.moto, region_name=region)
        create_resources(direct, boto3.client("events", endpoint_url=urls.moto, region_name=region))

        def seed(n: int) -> None:
            seed_processing(direct, n)

        # The function's logs and metrics go to stdout in Lambda; here they would drown the table.
        with redirect_stdout(function_output):
            from cancel_service.observability import logger

            logger.registered_handler.setStream(function_output)  # type: ignore[attr-defined]
            variants = Variants(urls.proxy, signing_key, max_in_flight=max(sizes))
            try:
                # Warm-up, not measured: the JWKS fetch, the clients, the first connections.
                for name in VARIANTS:
                    seed(min(sizes))
                    variants.prepared(name)()
                samples = measure(variants, seed, repeats)
            finally:
                variants.close()

    counts = sorted(set(repeats.values()))
    print(
        f"python {sys.version.split()[0]}, every AWS call delayed {options.delay_ms:g} ms, "
        f"{'/'.join(map(str, counts))} sample(s) per cell, medians, {time.monotonic() - started:.0f} s in all"
    )
    print("\n".join(table(samples, sizes, options.markdown)))


if __name__ == "__main__":
    main()
