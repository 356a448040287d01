"""Fixtures of the SAM tests, the SAM way for real: `sam build`, then `sam local invoke` of every
sample event in events/ and `sam local start-api`, in Docker.

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
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.clerk import DEV_ISSUER, DEV_ORIGIN, SigningKey
from devstack.provision import create_tables
from devstack.template import load_template
from support.constants import REGION, ROOT
from support.sam_local import BUS_NAME, PARAMETER_OVERRIDES, SETUP, TABLE_NAMES, Moto, SamEnv, SamLocal, run
from support.store import Store, bus_with_capture_queue


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
    run(
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


@pytest.fixture(scope="session")
def seeded(moto: Moto) -> Store:
    """The template's tables and a bus in moto, with a rule copying our events to a queue."""
    create_tables(moto.client("dynamodb"), TABLE_NAMES, load_template())
    events, sqs = moto.client("events"), moto.client("sqs")
    queue_url = bus_with_capture_queue(events, sqs, BUS_NAME, "sam-published")
    return Store(moto.client("dynamodb"), events, sqs, queue_url, TABLE_NAMES)


@pytest.fixture(scope="session")
def env_vars_file(moto: Moto, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """--env-vars for every function: moto's name on the network, the dev Clerk key."""
    values = {
        "AWS_ENDPOINT_URL": moto.network_url,
        "MESSAGES_TABLE": TABLE_NAMES["MessagesTable"],
        "PROJECTS_TABLE": TABLE_NAMES["ProjectsTable"],
        "BULK_STATE_TABLE": TABLE_NAMES["BulkStateTable"],
        "STOP_PACE_TABLE": TABLE_NAMES["StopPaceTable"],
        "AGE_INDEX_TABLE": TABLE_NAMES["AgeIndexTable"],
        "EVENT_BUS_NAME": BUS_NAME,
        "CLERK_ISSUER": DEV_ISSUER,
        "CLERK_JWT_KEY": SigningKey.development().public_pem(),
        "CLERK_AUTHORIZED_PARTIES": DEV_ORIGIN,
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    path = tmp_path_factory.mktemp("sam-env") / "env.json"
    path.write_text(json.dumps({"Parameters": values}))
    return path


@pytest.fixture(scope="session")
def sam_local(sam_env: SamEnv, built_template: Path, env_vars_file: Path, moto: Moto) -> SamLocal:
    return SamLocal(sam_env, built_template, env_vars_file, moto.network)
