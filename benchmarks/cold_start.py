"""Cold start of the HTTP function, measured against the floor every boto3 Lambda pays.

Each sample is a fresh interpreter (a new container), the variants interleaved so machine noise
hits them alike. Printed: median milliseconds, the ratio to the baseline, and peak RSS.

    baseline  import boto3 + create the DynamoDB, EventBridge and Step Functions clients
    import    import the handler module (what Lambda's init phase runs)
    init      import the handler module + build what its first request builds (clients,
              key cache; no network)
    traced    import the handler module as in Lambda with X-Ray tracing on (the X-Ray SDK
              loads and patches botocore)

Run: .venv/bin/python benchmarks/cold_start.py [samples]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_MEASURE = """
import json, resource, time
started = time.perf_counter()
{code}
elapsed = time.perf_counter() - started
peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"ms": elapsed * 1000, "rss_mib": peak_mib}}))
"""

HANDLER_IMPORT = "import cancel_service.handlers.cancel_http"
# name: (code, extra environment)
VARIANTS: dict[str, tuple[str, dict[str, str]]] = {
    "baseline": (
        "import boto3\nfor name in ('dynamodb', 'events', 'stepfunctions'):\n    boto3.client(name)",
        {},
    ),
    "import": (HANDLER_IMPORT, {}),
    "init": (
        f"{HANDLER_IMPORT}\nfrom cancel_service import runtime\n"
        "runtime.cancel_service(); runtime.session_verifier()",
        {},
    ),
    "traced": (
        HANDLER_IMPORT,
        {"LAMBDA_TASK_ROOT": str(ROOT / "src"), "AWS_LAMBDA_FUNCTION_NAME": "benchmark"},
    ),
}

ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "benchmark",
    "AWS_SECRET_ACCESS_KEY": "benchmark",
    "POWERTOOLS_SERVICE_NAME": "cancel-service",
    "POWERTOOLS_METRICS_NAMESPACE": "StopTheAI",
    "MESSAGES_TABLE": "messages",
    "PROJECTS_TABLE": "projects",
    "EVENT_BUS_NAME": "bus",
    "CLERK_ISSUER": "https://clerk.example.com",
    "PYTHONPATH": str(ROOT / "src"),
    "PYTHONDONTWRITEBYTECODE": "",
}


def sample(code: str, extra_environment: dict[str, str]) -> dict[str, float]:
    environment = {"PATH": os.environ.get("PATH", ""), **ENVIRONMENT, **extra_environment}
    output = subprocess.run(
        [sys.executable, "-c", _MEASURE.format(code=code)],
        env=environment,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(output.splitlines()[-1])
    return result


def main() -> None:
    samples = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    for code, extra in VARIANTS.values():  # warm the file system cache and write bytecode once
        sample(code, extra)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    for _ in range(samples):
        for name, (code, extra) in VARIANTS.items():
            results[name].append(sample(code, extra))

    baseline = statistics.median(r["ms"] for r in results["baseline"])
    print(f"python {sys.version.split()[0]}, {samples} samples per variant, medians")
    print(f"{'variant':10} {'ms':>8} {'ratio':>7} {'peak RSS MiB':>13}")
    for name, runs in results.items():
        median = statistics.median(r["ms"] for r in runs)
        rss = statistics.median(r["rss_mib"] for r in runs)
        print(f"{name:10} {median:8.1f} {median / baseline:7.2f} {rss:13.1f}")


if __name__ == "__main__":
    main()
