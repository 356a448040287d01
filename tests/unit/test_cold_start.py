"""The HTTP function's import stays lean: timing is a benchmark's job (benchmarks/cold_start.py),
but which modules load is deterministic and guarded here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from support.constants import ROOT

ENVIRONMENT = {
    "PYTHONPATH": str(ROOT / "src"),
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_METRICS_NAMESPACE": "StopTheAI",
}


IN_LAMBDA = {
    "AWS_LAMBDA_FUNCTION_NAME": "CancelFunction",
    "LAMBDA_TASK_ROOT": str(ROOT / "src"),
    "_X_AMZN_TRACE_ID": "Root=1-67891233-abcdef012345678912345678;Parent=53995c3f42cd8ad8;Sampled=1",
    "MESSAGES_TABLE": "messages",
    "PROJECTS_TABLE": "projects",
    "EVENT_BUS_NAME": "bus",
    "CLERK_ISSUER": "https://clerk.example.com",
}


def probed(probe: str, environment: dict[str, str]) -> Any:
    """What `probe` prints as JSON, run in a fresh interpreter with only `environment`."""
    run = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PATH": os.environ["PATH"], **ENVIRONMENT, **environment},
        capture_output=True,
        check=True,
    )
    return json.loads(run.stdout)


def test_importing_the_http_handler_loads_nothing_its_cold_path_does_not_need():
    probe = (
        "import json, sys\n"
        "import cancel_service.handlers.cancel_http\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pydantic', 'httpx', 'aws_xray_sdk', 'cancel_service'))))"
    )
    loaded = probed(probe, {})

    assert not [m for m in loaded if m.startswith(("pydantic", "httpx", "aws_xray_sdk.core"))], loaded
    assert "cancel_service.core.bulk" not in loaded
    assert "cancel_service.event_models" not in loaded


def test_with_tracing_on_in_lambda_only_botocore_is_patched_and_no_http_library_loads():
    """As deployed (Tracing: Active): the X-Ray SDK loads and patches botocore, so every AWS call
    is a subsegment; it patches nothing else, so no library the function does not call is
    imported at its cold start."""
    probe = (
        "import json, sys\n"
        "import cancel_service.handlers.cancel_http\n"
        "from cancel_service import runtime\n"
        "runtime.cancel_service(); runtime.session_verifier()\n"
        "from aws_xray_sdk.core.patcher import _PATCHED_MODULES\n"
        "print(json.dumps({'patched': sorted(_PATCHED_MODULES), 'loaded': sorted(m for m in sys.modules if "
        "m.split('.')[0] in ('httpx', 'requests', 'sqlite3', 'aws_xray_sdk'))}))"
    )
    traced = probed(probe, IN_LAMBDA)

    assert traced["patched"] == ["botocore"]
    assert "aws_xray_sdk.ext.botocore.patch" in traced["loaded"]
    assert not [m for m in traced["loaded"] if m.split(".")[0] in ("httpx", "requests", "sqlite3")], traced


def test_with_tracing_passthrough_in_lambda_no_xray_sdk_loads():
    """The template's Tracing=PassThrough sets POWERTOOLS_TRACE_DISABLED: the first request
    builds everything without the X-Ray SDK's recorder and patches, or wrapt."""
    probe = (
        "import json, sys\n"
        "import cancel_service.handlers.cancel_http\n"
        "from cancel_service import runtime\n"
        "runtime.cancel_service(); runtime.session_verifier()\n"
        "traced = ('aws_xray_sdk.core', 'aws_xray_sdk.ext', 'wrapt')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(traced))))"
    )
    assert probed(probe, {**IN_LAMBDA, "POWERTOOLS_TRACE_DISABLED": "true"}) == []
