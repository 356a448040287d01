"""The SAM way, for real: SAM CLI and Docker as scripts/sam-local-setup leaves them, moto_server in
a container the functions' containers reach by name, `sam local invoke`, and the scene the sample
events in events/ expect."""

from __future__ import annotations

import json
import subprocess
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import boto3
import pytest

from cancel_service_cli.backfill import Tables, backfill
from devstack.clerk import DEV_ISSUER
from devstack.demo import DEMO_PROJECT, DEMO_USER
from devstack.template import load_template
from support.constants import AGENT_STATE_MACHINE_ARN, EVENTS, REGION, ROOT
from support.store import Store

SETUP = ROOT / "scripts" / "sam-local-setup"
TABLE_NAMES = {
    "MessagesTable": "sam-messages",
    "ProjectsTable": "sam-projects",
    "BulkStateTable": "sam-bulk-state",
    "StopPaceTable": "sam-stop-pace",
    "AgeIndexTable": "sam-age-index",
}
BUS_NAME = "sam-cancel-bus"


# Parameters without a default, and the host's architecture for a native local run.
PARAMETER_OVERRIDES = " ".join(
    [
        f"ClerkIssuer={DEV_ISSUER}",
        # The stand-in agent the sample events name: the stopper stops no other machine's executions.
        f"AgentStateMachineArn={AGENT_STATE_MACHINE_ARN}",
        "Architecture=x86_64",
    ]
)


def run(
    args: list[str], env: dict[str, str], timeout: float, cwd: Path = ROOT, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"`{' '.join(args)}` exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
            f"\n--- stderr\n{proc.stderr[-4000:]}",
            pytrace=False,
        )
    return proc


@dataclass(frozen=True)
class SamEnv:
    env: dict[str, str]
    sam: str
    moto_image: str  # moto_server on the local base image (tests/sam/moto), built by the setup

    def docker(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        return run(["docker", *args], self.env, timeout, check=check).stdout.strip()


@dataclass(frozen=True)
class Moto:
    network: str
    container: str
    host_url: str  # from this process: 127.0.0.1:<published port>
    network_url: str  # from the functions' containers: the container's name on the network

    def client(self, service: Literal["dynamodb", "events", "sqs", "stepfunctions"]) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.host_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


@dataclass(frozen=True)
class SamLocal:
    sam_env: SamEnv
    template: Path
    env_vars: Path
    network: str

    def common_args(self) -> list[str]:
        return [
            "--template",
            str(self.template),
            "--parameter-overrides",
            PARAMETER_OVERRIDES,
            "--env-vars",
            str(self.env_vars),
            "--docker-network",
            self.network,
            "--skip-pull-image",
        ]

    def invoke(self, function: str, event: Path) -> dict[str, Any]:
        proc = run(
            [self.sam_env.sam, "local", "invoke", function, "--event", str(event), *self.common_args()],
            self.sam_env.env,
            timeout=180,
        )
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        assert lines, f"no response on stdout; stderr:\n{proc.stderr[-3000:]}"
        try:
            response: dict[str, Any] = json.loads(lines[-1])
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON response: {lines[-1]!r}\nstderr:\n{proc.stderr[-3000:]}", pytrace=False)
        return response


# Every sample event in events/ and the function that `sam local invoke` runs it with; a test
# below checks its result. A new sample event needs an entry here and a test.
INVOKED_WITH = {
    "cancel-bad-body.json": "CancelFunction",
    "cancel-bearer.json": "CancelFunction",
    "cancel-cookie.json": "CancelFunction",
    "cancel-no-token.json": "CancelFunction",
    "bulk-by-owner.json": "BulkCancelFunction",
    "bulk-by-projects.json": "BulkCancelFunction",
    "bulk-invalid.json": "BulkCancelFunction",
    "bulk-older-than.json": "BulkCancelFunction",
    "stop-agent.json": "UserStopAgentFunction",
    "execution-aborted.json": "ExecutionStatusFunction",
    "execution-failed.json": "ExecutionStatusFunction",
    "age-index-stream.json": "AgeIndexFunction",
}
OTHER_PROJECT = "k57otherowner01"


def body_of(response: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(response["body"])
    return body


def headers_of(response: dict[str, Any]) -> dict[str, str]:
    return {name.lower(): value for name, value in response.get("headers", {}).items()}


def detail_of(event: str) -> dict[str, Any]:
    detail: dict[str, Any] = json.loads((EVENTS / event).read_text())["detail"]
    return detail


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def seed_processing(seeded: Store, count: int = 2) -> list[str]:
    """The demo project (owned by the sample tokens' user) with exactly `count` processing
    messages, all new: what the session's earlier tests left processing there (the event samples'
    scenes) is completed first, so that a cancel's answer can be compared with these alone."""
    seeded.put_project(DEMO_PROJECT, DEMO_USER)
    left_processing = seeded.dynamodb.query(
        TableName=seeded.table_names["MessagesTable"],
        IndexName="byProjectAndStatus",
        KeyConditionExpression="projectId = :project AND #status = :processing",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":project": {"S": DEMO_PROJECT}, ":processing": {"S": "processing"}},
    )["Items"]
    for item in left_processing:
        seeded.put_message(item["id"]["S"], project_id=DEMO_PROJECT, status="completed")
    ids = [f"ksam{uuid.uuid4().hex[:12]}" for _ in range(count)]
    for message_id in ids:
        seeded.put_message(message_id, project_id=DEMO_PROJECT)
    seeded.put_message(f"kdone{uuid.uuid4().hex[:12]}", project_id=DEMO_PROJECT, status="completed")
    return ids


def expect_cancelled(seeded: Store, body: dict[str, Any], ids: list[str]) -> None:
    assert body["success"] is True
    assert body["cancelled"] is True
    # The demo project's other messages are finished (seed_processing): this call cancels
    # exactly the new ones.
    assert sorted(body["messageIds"]) == sorted(ids)
    assert {seeded.status(message_id) for message_id in ids} == {"cancelled"}
    published = [event for event in seeded.published() if event["detail"]["messageId"] in ids]
    assert sorted(event["detail"]["messageId"] for event in published) == sorted(ids)
    assert {event["detail-type"] for event in published} == {"Message Cancel Requested"}
    assert {event["detail"]["requestedBy"] for event in published} == {DEMO_USER}


def seed_bulk_scene(seeded: Store) -> None:
    """As the sample events expect: the demo owner's project with a stale and a fresh processing
    message, and someone else's project with a processing message that no bulk sample touches."""
    now = datetime.now(UTC)
    seeded.put_project(DEMO_PROJECT, DEMO_USER)
    seeded.put_project(OTHER_PROJECT, "user_2someoneElse")
    seeded.put_message("k58xyz789ghi012", project_id=DEMO_PROJECT, updated_at=iso(now - timedelta(hours=2)))
    seeded.put_message("k59abc456def789", project_id=DEMO_PROJECT, updated_at=iso(now - timedelta(minutes=1)))
    seeded.put_message(
        "k64otherproj001", project_id=OTHER_PROJECT, updated_at=iso(now - timedelta(minutes=1))
    )
    # No stream reaches the age index under SAM local: the operator's backfill enters the
    # processing messages, as it does once for a deployed stack's existing messages.
    shards = int(load_template()["Parameters"]["AgeIndexShards"]["Default"])
    names = seeded.table_names
    backfill(seeded.dynamodb, Tables(names["MessagesTable"], names["AgeIndexTable"], shards), segments=1)
