"""The HTTP function's import stays lean: timing is a benchmark's job (benchmarks/cold_start.py),
but which modules load is deterministic and guarded here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from support.constants import ROOT


def test_importing_the_http_handler_loads_nothing_its_cold_path_does_not_need():
    probe = (
        "import json, sys\n"
        "import cancel_service.handlers.cancel_http\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pydantic', 'httpx', 'aws_xray_sdk', 'cancel_service'))))"
    )
    environment = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT / "src"),
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_METRICS_NAMESPACE": "StopTheAI",
    }
    loaded = json.loads(
        subprocess.run([sys.executable, "-c", probe], env=environment, capture_output=True, check=True).stdout
    )

    assert not [m for m in loaded if m.startswith(("pydantic", "httpx", "aws_xray_sdk.core"))], loaded
    assert "cancel_service.bulk" not in loaded
    assert "cancel_service.event_models" not in loaded
