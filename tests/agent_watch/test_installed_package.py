"""The agent's library is a package of its own: installed from its own directory, depending on
boto3 alone, and imported without the cancel service (in a fresh interpreter: this suite's
conftest imports the service)."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

from devstack.constants import ROOT

PACKAGE_DIR = ROOT / "message-cancel-watch"

PROBE = """
import json, sys
import message_cancel_watch
print(json.dumps({
    "file": message_cancel_watch.__file__,
    "names": sorted(message_cancel_watch.__all__),
    "service": sorted(name for name in sys.modules if name.split(".")[0] in ("cancel_service", "devstack")),
}))
"""


def test_the_library_is_installed_from_its_own_package_and_imports_alone():
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, cwd="/", timeout=60
    )
    found = json.loads(probe.stdout)
    assert found["file"].startswith(str(PACKAGE_DIR / "src" / "message_cancel_watch"))
    assert found["names"] == [
        "AsyncCancelWatch",
        "CancelWatch",
        "DEFAULT_CONSISTENT_READ",
        "DEFAULT_INTERVAL",
        "MessageCancelled",
    ]
    assert found["service"] == []


def test_the_distribution_depends_on_boto3_alone_and_supports_the_lambda_pythons():
    distribution = metadata.distribution("message-cancel-watch")
    requirements = distribution.requires or []
    assert [requirement.split(">")[0].split("=")[0].strip() for requirement in requirements] == ["boto3"]
    assert distribution.metadata["Requires-Python"] == "<3.14,>=3.11"
    assert (PACKAGE_DIR / "README.md").is_file()
    assert (PACKAGE_DIR / "src" / "message_cancel_watch" / "py.typed").is_file()
