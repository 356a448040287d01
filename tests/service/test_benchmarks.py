"""The benchmarks still run: each script in its short mode, as a subprocess, printing its table.

What they measure is theirs to print; nothing here depends on how fast this machine is.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from support.constants import ROOT

BENCHMARKS = ROOT / "benchmarks"


def run_benchmark(script: str, *args: str) -> list[str]:
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.splitlines()


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def test_cancel_latency_prints_a_markdown_row_for_each_size():
    lines = run_benchmark("cancel_latency.py", "--markdown")

    table = [line for line in lines if line.startswith("|")]
    assert cells(table[0]) == [
        "N",
        "handler ms",
        "one-at-a-time ms",
        "all-in-flight ms",
        "handler/all-in-flight",
        "one-at-a-time/handler",
    ]
    assert set(cells(table[1])) == {"---:"}
    rows = [cells(line) for line in table[2:]]
    assert [row[0] for row in rows] == ["1", "10"]
    for row in rows:
        assert all(float(value) > 0 for value in row[1:]), row


def test_cancel_latency_prints_a_plain_table_by_default():
    lines = run_benchmark("cancel_latency.py")

    header = next(index for index, line in enumerate(lines) if line.split()[:3] == ["N", "handler", "ms"])
    rows = [line.split() for line in lines[header + 1 :]]
    assert [row[0] for row in rows] == ["1", "10"]
    assert all(len(row) == 6 for row in rows), rows


@pytest.mark.parametrize(
    ("label", "target"),
    [("CPU per request", "target <= 1 ms"), ("RSS of a fresh process", "target <= 100 MiB")],
)
def test_warm_overhead_prints_each_figure_with_its_target(label, target, warm_overhead_output):
    (line,) = [line for line in warm_overhead_output if line.startswith(label)]
    assert f"{target}: within target" in line or f"{target}: OVER TARGET" in line, line


@pytest.fixture(scope="module")
def warm_overhead_output() -> list[str]:
    return run_benchmark("warm_overhead.py")


def test_stop_costs_counts_the_calls_of_a_stop_of_two_messages():
    lines = run_benchmark("stop_costs.py")

    calls = next(line for line in lines if "AWS calls:" in line)
    # The Stop: the project read, one index query, one PutEvents of both events, both writes;
    # then each agent stopped, and each execution end recorded (a query and a write each).
    for expected in ("dynamodb:GetItem 1,", "events:PutEvents 1,", "states:StopExecution 2"):
        assert expected in calls, calls
    counted = next(line for line in lines if "counted:" in line)
    assert "events 2," in counted, counted
    assert any(line.strip().startswith("total") and "$" in line for line in lines)


@pytest.mark.parametrize(("tracing", "trace_disabled"), [("Active", None), ("PassThrough", "true")])
def test_cold_start_measures_the_function_with_the_environment_lambda_gives_it(tracing, trace_disabled):
    """The cold start benchmark's `deployed` and `passthrough` run with the template's environment
    for that Tracing value, and nothing only the local stack sets."""
    spec = importlib.util.spec_from_file_location("cold_start", BENCHMARKS / "cold_start.py")
    assert spec is not None
    assert spec.loader is not None
    cold_start = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cold_start)

    environment = cold_start.deployed_environment("http://127.0.0.1:1/jwks", tracing)

    assert environment.get("POWERTOOLS_TRACE_DISABLED") == trace_disabled
    assert environment["AWS_LAMBDA_FUNCTION_NAME"]
    assert environment["_X_AMZN_TRACE_ID"]
    assert "AWS_SAM_LOCAL" not in environment
    assert "AWS_ENDPOINT_URL" not in environment
