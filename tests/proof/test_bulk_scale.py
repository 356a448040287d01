"""A bulk at scale, end to end (benchmarks/bulk_scale.py checks its invariants and exits 1 when one
fails): 2,000 processing messages in CI, enough for a chain of continuations and hundreds of
stopper batches; the 100,000 run is the benchmark's default and docs/performance.md reports it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from support.constants import ROOT
from support.figures import record

MESSAGES, PROJECTS = 2_000, 20
# 500 messages per bulk invocation (the benchmark's time budget): a chain of continuations.
CONTINUATIONS_AT_LEAST = MESSAGES // 500 - 1


@pytest.mark.proof
def test_a_bulk_cancels_and_stops_each_message_exactly_once_at_the_rate() -> None:
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bulk_scale.py"),
            "--messages",
            str(MESSAGES),
            "--projects",
            str(PROJECTS),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    figures = [line for line in completed.stdout.splitlines() if not line.startswith("{")]
    record("bulk at scale", *figures)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert any(line.startswith(f"{MESSAGES:,} messages") for line in figures)
    [invocations] = [line for line in figures if line.startswith("invocations:")]
    assert int(invocations.split()[2].rstrip(",")) - 1 >= CONTINUATIONS_AT_LEAST
