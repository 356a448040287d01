"""A bulk at scale, end to end (benchmarks/bulk_scale.py checks its invariants and exits 1 when one
fails): 20,000 processing messages in CI, the 100,000 run is the benchmark's default."""

from __future__ import annotations

import subprocess
import sys

import pytest

from support.constants import ROOT


@pytest.mark.proof
def test_twenty_thousand_messages_are_each_cancelled_and_stopped_exactly_once_at_the_rate(capsys):
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bulk_scale.py"),
            "--messages",
            "20000",
            "--projects",
            "200",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )

    figures = [line for line in completed.stdout.splitlines() if not line.startswith("{")]
    with capsys.disabled():
        print("\nbulk at scale:", *figures, sep="\n  ")
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert any(line.startswith("20,000 messages") for line in figures)
