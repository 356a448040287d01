"""The operator's `cancel-service` console script against the local stack, as an operator runs it:
the standard AWS environment pointed at the stack's moto (AWS_ENDPOINT_URL), the stack's bus, and
`bulk ... --wait` following the bulk function to its `Bulk Cancel Completed` report."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from devstack.demo import DEMO_MESSAGES, DEMO_PROJECT
from support.local_stack import StackProcess, http, operator_aws_environment

CLI = Path(sys.executable).parent / "cancel-service"
PROCESSING = sorted(message_id for message_id, _, status in DEMO_MESSAGES if status == "processing")
# The command's own timeout; the subprocess gets a little more to print and clean up.
WAIT = "60s"
RUN_TIMEOUT = 90


@pytest.fixture(scope="module")
def stack() -> Iterator[StackProcess]:
    with StackProcess() as running:
        yield running


@pytest.fixture(scope="module")
def operator_environment(stack: StackProcess) -> dict[str, str]:
    return operator_aws_environment(stack)


@pytest.fixture(scope="module")
def events(stack: StackProcess) -> Any:
    return boto3.client(
        "events",
        endpoint_url=stack.state["awsEndpoint"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def bus_name(events: Any) -> str:
    """The stack's one bus of its own (the template's CancelBus)."""
    (name,) = [bus["Name"] for bus in events.list_event_buses()["EventBuses"] if bus["Name"] != "default"]
    return str(name)


def cancel_service(environment: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def statuses(stack: StackProcess) -> dict[str, str]:
    answer = http("GET", f"{stack.origin}/__devstack/messages?projectId={DEMO_PROJECT}")
    assert answer.status == 200
    return {message["id"]: message["status"] for message in answer.body["messages"]}


def test_a_bad_selector_exits_2_and_sends_nothing(
    stack: StackProcess, operator_environment: dict[str, str], bus_name: str
) -> None:
    before = statuses(stack)

    result = cancel_service(operator_environment, "bulk", "--projects", "not a project", "--bus", bus_name)

    assert result.returncode == 2, result.stderr
    assert "--projects: 'not a project' refused" in result.stderr
    assert result.stdout == ""
    assert statuses(stack) == before


def test_a_dry_run_then_a_bulk_of_the_demo_project_end_with_their_reports(
    stack: StackProcess, operator_environment: dict[str, str], bus_name: str, events: Any
) -> None:
    assert all(statuses(stack)[message_id] == "processing" for message_id in PROCESSING)
    common = ("bulk", "--projects", DEMO_PROJECT, "--wait", "--timeout", WAIT, "--json", "--bus", bus_name)

    dry_run = cancel_service(operator_environment, *common, "--dry-run", "--bulk-id", "e2e-dry-run")

    assert dry_run.returncode == 0, dry_run.stderr
    report = json.loads(dry_run.stdout)
    assert report["bulkId"] == "e2e-dry-run"
    assert report["dryRun"] is True
    assert report["selector"] == {"projectIds": [DEMO_PROJECT], "projectCount": 1}
    assert report["selected"] == len(PROCESSING)
    assert report["cancelled"] == 0
    assert "bulk e2e-dry-run" in dry_run.stderr
    assert all(statuses(stack)[message_id] == "processing" for message_id in PROCESSING)

    # The real bulk by the stack's name, in the environment the stack's banner shows (AWS_REGION
    # alone), waiting until its agent stops have left the bulk lane.
    banner_environment = {
        name: value for name, value in operator_environment.items() if name != "AWS_DEFAULT_REGION"
    }
    real = cancel_service(
        banner_environment,
        *common[: common.index("--bus")],
        "--stack",
        stack.state["stackName"],
        "--wait-stops",
        "--reason",
        "e2e_operator",
    )

    assert real.returncode == 0, real.stderr
    assert real.stderr.rstrip().endswith(
        "agent stops: none queued in the bulk lane: every agent stop was asked of Step Functions"
    )
    report = json.loads(real.stdout)
    assert report["outcome"] == "finished"
    assert report["dryRun"] is False
    assert report["cancelled"] == len(PROCESSING)
    assert report["failed"] == 0
    assert f"bulk {report['bulkId']} finished" in real.stderr
    assert all(statuses(stack)[message_id] == "cancelled" for message_id in PROCESSING)
    rules = [rule["Name"] for rule in events.list_rules(EventBusName=bus_name)["Rules"]]
    assert not [name for name in rules if name.startswith("bulk-watch-")], "a temporary rule was left"
