"""`python -m devstack invoke` for every sample event in events/, like `sam local invoke`: the
function the event is for, the template's environment, a local stack started for the call."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.constants import ROOT, STACK_NAME
from devstack.demo import stand_in_agent_arn
from devstack.template import Template
from support.local_stack import function_for_event

EVENTS = sorted((ROOT / "events").glob("*.json"))
# What the HTTP samples answer against the demo data (other samples: no function error).
EXPECTED_STATUS = {
    "cancel-bearer.json": 200,
    "cancel-cookie.json": 200,
    "cancel-bad-body.json": 400,
    "cancel-no-token.json": 401,
}


def invoke(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack", "invoke", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("event_path", EVENTS, ids=[path.name for path in EVENTS])
def test_invoke_runs_the_sample_event(event_path: Path):
    event = json.loads(event_path.read_text())
    agent = {"AgentStateMachineArn": stand_in_agent_arn(STACK_NAME) or ""}
    function = function_for_event(Template(agent, require_all=False), event)
    assert function, f"no function of template.yaml takes {event_path.name}"

    result = invoke(function, "-e", str(event_path.relative_to(ROOT)), "--standalone")

    assert result.returncode == 0, result.stderr
    assert "START RequestId:" in result.stderr
    assert "REPORT RequestId:" in result.stderr
    answer = json.loads(result.stdout)
    assert "errorType" not in (answer or {}), answer
    if event_path.name == "stop-agent.json":
        assert answer == {"batchItemFailures": []}  # no such execution here: nothing to stop, quietly
    if event_path.name == "age-index-stream.json":
        assert answer == {"batchItemFailures": []}  # every record's entry written or removed
    if event_path.name in EXPECTED_STATUS:
        assert answer["statusCode"] == EXPECTED_STATUS[event_path.name], answer
        if answer["statusCode"] == 200:
            assert json.loads(answer["body"])["cancelled"] is True
    assert "eyJ" not in result.stderr.replace(event_path.read_text(), ""), "a token reached the logs"


def test_invoke_applies_env_vars_like_sam(tmp_path: Path):
    env_vars = tmp_path / "env.json"
    env_vars.write_text(json.dumps({"CancelFunction": {"CLERK_ISSUER": "https://elsewhere.example"}}))

    result = invoke(
        "CancelFunction", "-e", "events/cancel-bearer.json", "--standalone", "--env-vars", str(env_vars)
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["statusCode"] == 401  # the sample's issuer is no longer the expected one


def test_invoke_names_the_functions_when_the_id_is_unknown():
    result = invoke("NoSuchFunction", "--standalone")

    assert result.returncode == 2
    assert "CancelFunction" in result.stderr
