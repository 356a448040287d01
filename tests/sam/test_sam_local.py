"""The SAM way, for real: `sam build`, then `sam local invoke` of every sample event in events/
and `sam local start-api`, in Docker. Run alone with `pytest -m sam`.

Session fixtures: scripts/sam-local-setup (SAM CLI, our own dockerd, the local Lambda Python 3.13
base image), one `sam build`, and moto_server in a container of the tests' own on a Docker network
that they create; the functions' containers join that network (`--docker-network`) and reach moto
by its container name. Nothing here talks to an address outside this machine: moto is published
on 127.0.0.1 only, for seeding and inspecting from the test process.

When Docker cannot run here these tests FAIL (with the setup's own words); they never skip.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from devstack.clerk import DEV_ISSUER, DEV_ORIGIN, SigningKey
from devstack.sample_events import DEMO_PROJECT, DEMO_USER
from devstack.template import create_tables, load_template
from support.constants import AGENT_STATE_MACHINE_ARN
from support.store import bus_with_capture_queue

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "scripts" / "sam-local-setup"
EVENTS = ROOT / "events"
REGION = "us-east-1"
TABLE_NAMES = {"MessagesTable": "sam-messages", "ProjectsTable": "sam-projects"}
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
pytestmark = pytest.mark.sam


def _run(
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
        return _run(["docker", *args], self.env, timeout, check=check).stdout.strip()


@pytest.fixture(scope="session")
def sam_env() -> Iterator[SamEnv]:
    """Run scripts/sam-local-setup (idempotent) and use the daemon and SAM CLI it prints."""
    proc = subprocess.run(
        [str(SETUP), "--moto-image"], cwd=ROOT, capture_output=True, text=True, timeout=1200, check=False
    )
    if proc.returncode != 0:
        pytest.fail(
            "scripts/sam-local-setup failed, so `sam local` cannot run on this machine "
            f"(exit {proc.returncode}):\n{proc.stderr[-4000:]}",
            pytrace=False,
        )
    values = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "DOCKER_", "SAM_", "PYENV_VERSION"))
    }
    env.update(values)
    # What SAM hands to the functions as their credentials and region (moto accepts any).
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
    )
    try:
        yield SamEnv(env, values["SAM"], values["MOTO_IMAGE"])
    finally:
        if values.get("CANCEL_SERVICE_DOCKERD_STARTED") == "1":
            subprocess.run([str(SETUP), "--stop"], cwd=ROOT, timeout=120, check=False)


@pytest.fixture(scope="session")
def built_template(sam_env: SamEnv, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`sam build` of the template (python3.13 from pyenv, x86_64); the built template's path."""
    build_dir = tmp_path_factory.mktemp("sam-build")
    _run(
        [
            sam_env.sam,
            "build",
            "--template",
            str(ROOT / "template.yaml"),
            "--build-dir",
            str(build_dir / "build"),
            "--cache-dir",
            str(build_dir / "cache"),
            "--parameter-overrides",
            PARAMETER_OVERRIDES,
        ],
        {**sam_env.env, "PYENV_VERSION": "3.13.0"},
        timeout=600,
    )
    return build_dir / "build" / "template.yaml"


@dataclass(frozen=True)
class Moto:
    network: str
    container: str
    host_url: str  # from this process: 127.0.0.1:<published port>
    network_url: str  # from the functions' containers: the container's name on the network

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.host_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


@pytest.fixture(scope="session")
def moto(sam_env: SamEnv) -> Iterator[Moto]:
    image = sam_env.moto_image
    suffix = uuid.uuid4().hex[:8]
    network = f"cancel-service-sam-{suffix}"
    container = f"cancel-service-moto-{suffix}"
    sam_env.docker("network", "create", network)
    try:
        sam_env.docker(
            "run", "-d", "--rm", "--name", container, "--network", network, "-p", "127.0.0.1::5000", image
        )
        port = sam_env.docker("port", container, "5000/tcp").splitlines()[0].rsplit(":", 1)[1]
        host_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{host_url}/moto-api/data.json", timeout=2):  # noqa: S310
                    break
            except OSError:
                if time.monotonic() > deadline:
                    logs = sam_env.docker("logs", container, check=False)
                    pytest.fail(f"moto_server did not answer in 60 s:\n{logs[-3000:]}", pytrace=False)
                time.sleep(0.2)
        yield Moto(network, container, host_url, f"http://{container}:5000")
    finally:
        sam_env.docker("rm", "-f", container, check=False)
        sam_env.docker("network", "rm", network, check=False)


@dataclass(frozen=True)
class Seeded:
    moto: Moto
    queue_url: str

    def published(self) -> list[dict[str, Any]]:
        sqs = self.moto.client("sqs")
        events = []
        while batch := sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages"):
            for message in batch:
                events.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return events

    def put_message(
        self,
        message_id: str,
        project_id: str,
        status: str = "processing",
        updated_at: str = "2026-11-24T12:00:00.000Z",
        execution_arn: str | None = None,
        **extra: str,
    ) -> None:
        item = {
            "id": {"S": message_id},
            "projectId": {"S": project_id},
            "conversationId": {"S": "conv_sam"},
            "status": {"S": status},
            "createdAt": {"S": "2026-11-24T11:59:00.000Z"},
            "updatedAt": {"S": updated_at},
            **{name: {"S": value} for name, value in extra.items()},
        }
        if execution_arn:
            item["executionArn"] = {"S": execution_arn}
        self.moto.client("dynamodb").put_item(TableName=TABLE_NAMES["MessagesTable"], Item=item)

    def message(self, message_id: str) -> dict[str, str]:
        item = self.moto.client("dynamodb").get_item(
            TableName=TABLE_NAMES["MessagesTable"], Key={"id": {"S": message_id}}
        )["Item"]
        return {name: value["S"] for name, value in item.items() if "S" in value}

    def put_project(self, project_id: str, owner_id: str) -> None:
        self.moto.client("dynamodb").put_item(
            TableName=TABLE_NAMES["ProjectsTable"],
            Item={"id": {"S": project_id}, "ownerId": {"S": owner_id}},
        )

    def status(self, message_id: str) -> str:
        item = self.moto.client("dynamodb").get_item(
            TableName=TABLE_NAMES["MessagesTable"], Key={"id": {"S": message_id}}
        )["Item"]
        return str(item["status"]["S"])


@pytest.fixture(scope="session")
def seeded(moto: Moto) -> Seeded:
    """The template's tables and a bus in moto, with a rule copying our events to a queue."""
    create_tables(moto.client("dynamodb"), TABLE_NAMES, load_template())
    queue_url = bus_with_capture_queue(moto.client("events"), moto.client("sqs"), BUS_NAME, "sam-published")
    return Seeded(moto, queue_url)


@pytest.fixture(scope="session")
def env_vars_file(moto: Moto, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """--env-vars for every function: moto's name on the network, the dev Clerk key."""
    values = {
        "AWS_ENDPOINT_URL": moto.network_url,
        "MESSAGES_TABLE": TABLE_NAMES["MessagesTable"],
        "PROJECTS_TABLE": TABLE_NAMES["ProjectsTable"],
        "EVENT_BUS_NAME": BUS_NAME,
        "CLERK_ISSUER": DEV_ISSUER,
        "CLERK_JWT_KEY": SigningKey.development().public_pem(),
        "CLERK_AUTHORIZED_PARTIES": DEV_ORIGIN,
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    path = tmp_path_factory.mktemp("sam-env") / "env.json"
    path.write_text(json.dumps({"Parameters": values}))
    return path


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
        proc = _run(
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


@pytest.fixture(scope="session")
def sam_local(sam_env: SamEnv, built_template: Path, env_vars_file: Path, moto: Moto) -> SamLocal:
    return SamLocal(sam_env, built_template, env_vars_file, moto.network)


def _body(response: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(response["body"])
    return body


def _headers(response: dict[str, Any]) -> dict[str, str]:
    return {name.lower(): value for name, value in response.get("headers", {}).items()}


def _seed_processing(seeded: Seeded, count: int = 2) -> list[str]:
    """The demo project (owned by the sample tokens' user) with `count` new processing messages."""
    seeded.put_project(DEMO_PROJECT, DEMO_USER)
    ids = [f"ksam{uuid.uuid4().hex[:12]}" for _ in range(count)]
    for message_id in ids:
        seeded.put_message(message_id, DEMO_PROJECT)
    seeded.put_message(f"kdone{uuid.uuid4().hex[:12]}", DEMO_PROJECT, status="completed")
    return ids


def _expect_cancelled(seeded: Seeded, body: dict[str, Any], ids: list[str]) -> None:
    assert body["success"] is True
    assert body["cancelled"] is True
    # Earlier tests' messages are already cancelled; this call cancels exactly the new ones.
    assert sorted(body["messageIds"]) == sorted(ids)
    assert {seeded.status(message_id) for message_id in ids} == {"cancelled"}
    published = [event for event in seeded.published() if event["detail"]["messageId"] in ids]
    assert sorted(event["detail"]["messageId"] for event in published) == sorted(ids)
    assert {event["detail-type"] for event in published} == {"Message Cancel Requested"}
    assert {event["detail"]["requestedBy"] for event in published} == {DEMO_USER}


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
    "stop-agent.json": "StopAgentFunction",
    "execution-aborted.json": "ExecutionStatusFunction",
    "execution-failed.json": "ExecutionStatusFunction",
}


def test_every_sample_event_is_invoked_here() -> None:
    assert sorted(path.name for path in EVENTS.glob("*.json")) == sorted(INVOKED_WITH)


def test_no_token_is_401(sam_local: SamLocal) -> None:
    response = sam_local.invoke(INVOKED_WITH["cancel-no-token.json"], EVENTS / "cancel-no-token.json")
    assert response["statusCode"] == 401
    assert _headers(response)["www-authenticate"] == "Bearer"
    assert _body(response)["error"]["code"] == "unauthenticated"


def test_bad_body_is_400(sam_local: SamLocal) -> None:
    response = sam_local.invoke(INVOKED_WITH["cancel-bad-body.json"], EVENTS / "cancel-bad-body.json")
    assert response["statusCode"] == 400
    assert _body(response)["error"]["code"] == "invalid_request"
    assert _headers(response)["cache-control"] == "no-store"


@pytest.mark.parametrize("event", ["cancel-bearer.json", "cancel-cookie.json"])
def test_signed_in_owner_cancels_through_moto(sam_local: SamLocal, seeded: Seeded, event: str) -> None:
    ids = _seed_processing(seeded)
    response = sam_local.invoke(INVOKED_WITH[event], EVENTS / event)
    assert response["statusCode"] == 200, response
    assert _headers(response)["content-type"] == "application/json"
    _expect_cancelled(seeded, _body(response), ids)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_start_api_serves_the_cancel_route(sam_local: SamLocal, seeded: Seeded, tmp_path: Path) -> None:
    event = json.loads((EVENTS / "cancel-bearer.json").read_text())
    authorization = event["headers"]["authorization"]
    port = _free_port()
    log = tmp_path / "start-api.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [
                sam_local.sam_env.sam,
                "local",
                "start-api",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *sam_local.common_args(),
            ],
            cwd=ROOT,
            env=sam_local.sam_env.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}/api/messages/cancel"
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"sam local start-api did not listen:\n{log.read_text()[-3000:]}", pytrace=False
                    )
                time.sleep(0.2)

        def post(body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 - loopback
                    return answer.status, json.loads(answer.read())
            except urllib.error.HTTPError as error:
                return error.code, json.loads(error.read())

        status, body = post(
            json.dumps({"projectId": DEMO_PROJECT}).encode(), {"content-type": "application/json"}
        )
        assert (status, body["error"]["code"]) == (401, "unauthenticated")

        ids = _seed_processing(seeded)
        status, body = post(
            json.dumps({"projectId": DEMO_PROJECT}).encode(),
            {"content-type": "application/json", "authorization": authorization},
        )
        assert status == 200, (body, log.read_text()[-3000:])
        _expect_cancelled(seeded, body, ids)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# --- the EventBridge-driven functions -------------------------------------------------------------

OTHER_PROJECT = "k57otherowner01"


def _detail(event: str) -> dict[str, Any]:
    detail: dict[str, Any] = json.loads((EVENTS / event).read_text())["detail"]
    return detail


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _seed_bulk_scene(seeded: Seeded) -> None:
    """As the sample events expect: the demo owner's project with a stale and a fresh processing
    message, and someone else's project with a processing message that no bulk sample touches."""
    now = datetime.now(UTC)
    seeded.put_project(DEMO_PROJECT, DEMO_USER)
    seeded.put_project(OTHER_PROJECT, "user_2someoneElse")
    seeded.put_message("k58xyz789ghi012", DEMO_PROJECT, updated_at=_iso(now - timedelta(hours=2)))
    seeded.put_message("k59abc456def789", DEMO_PROJECT, updated_at=_iso(now - timedelta(minutes=1)))
    seeded.put_message("k64otherproj001", OTHER_PROJECT, updated_at=_iso(now - timedelta(minutes=1)))


@pytest.mark.parametrize(
    ("event", "cancelled"),
    [
        ("bulk-by-projects.json", ["k58xyz789ghi012", "k59abc456def789"]),
        ("bulk-by-owner.json", ["k58xyz789ghi012", "k59abc456def789"]),
        ("bulk-older-than.json", ["k58xyz789ghi012"]),
    ],
)
def test_bulk_samples_cancel_through_moto(
    sam_local: SamLocal, seeded: Seeded, event: str, cancelled: list[str]
) -> None:
    _seed_bulk_scene(seeded)
    seeded.published()  # drain

    answer = sam_local.invoke(INVOKED_WITH[event], EVENTS / event)

    assert answer["accepted"] is True, answer
    assert sorted(answer["messageIds"]) == cancelled
    assert {seeded.message(message_id)["cancelledBy"] for message_id in cancelled} == {"system:bulk"}
    assert seeded.status("k64otherproj001") == "processing"
    published = sorted(event["detail"]["messageId"] for event in seeded.published())
    assert published == cancelled


def test_bulk_invalid_sample_changes_nothing(sam_local: SamLocal, seeded: Seeded) -> None:
    _seed_bulk_scene(seeded)
    seeded.published()  # drain

    answer = sam_local.invoke(INVOKED_WITH["bulk-invalid.json"], EVENTS / "bulk-invalid.json")

    assert answer == {"accepted": False}
    assert seeded.status("k58xyz789ghi012") == "processing"
    assert seeded.published() == []


def test_stop_agent_sample_aborts_the_execution(sam_local: SamLocal, seeded: Seeded) -> None:
    # The agent's execution that the sample names: arn:...:execution:<state machine>:<name>.
    [stop_request] = json.loads((EVENTS / "stop-agent.json").read_text())["Records"]
    arn = json.loads(stop_request["body"])["detail"]["executionArn"]
    machine_name, execution_name = arn.split(":")[6:8]
    sfn = seeded.moto.client("stepfunctions")
    machines = {m["name"]: m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
    machine = (
        machines.get(machine_name)
        or sfn.create_state_machine(
            name=machine_name,
            roleArn="arn:aws:iam::123456789012:role/stand-in-agent",
            definition=json.dumps(
                {"StartAt": "Work", "States": {"Work": {"Type": "Wait", "Seconds": 3600, "End": True}}}
            ),
        )["stateMachineArn"]
    )
    started = sfn.start_execution(stateMachineArn=machine, name=execution_name)["executionArn"]
    assert started == arn
    assert sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"

    answer = sam_local.invoke(INVOKED_WITH["stop-agent.json"], EVENTS / "stop-agent.json")

    assert answer == {"batchItemFailures": []}, answer
    assert sfn.describe_execution(executionArn=arn)["status"] == "ABORTED"


def test_execution_failed_sample_fails_the_processing_message(sam_local: SamLocal, seeded: Seeded) -> None:
    _seed_bulk_scene(seeded)
    detail = _detail("execution-failed.json")
    seeded.put_message(detail["name"], DEMO_PROJECT, execution_arn=detail["executionArn"])

    answer = sam_local.invoke(INVOKED_WITH["execution-failed.json"], EVENTS / "execution-failed.json")

    assert answer["failedIds"] == [detail["name"]], answer
    assert seeded.status(detail["name"]) == "failed"


def test_execution_aborted_sample_confirms_the_cancelled_message_stopped(
    sam_local: SamLocal, seeded: Seeded
) -> None:
    detail = _detail("execution-aborted.json")
    stopped_at = datetime.fromtimestamp(detail["stopDate"] / 1000, tz=UTC)
    seeded.put_message(
        detail["name"],
        DEMO_PROJECT,
        status="cancelled",
        execution_arn=detail["executionArn"],
        cancelledAt=_iso(stopped_at - timedelta(seconds=1)),
    )

    answer = sam_local.invoke(INVOKED_WITH["execution-aborted.json"], EVENTS / "execution-aborted.json")

    assert answer["agentStoppedIds"] == [detail["name"]], answer
    assert seeded.message(detail["name"])["agentStoppedAt"] == _iso(stopped_at)
