"""Fixtures of every suite: a fresh Lambda container per test, moto with the template's tables and
bus, a local JWKS server, real tokens, the function's log lines."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

# Powertools reads these when the handler modules are imported, as Lambda's environment would be.
os.environ.update(
    POWERTOOLS_SERVICE_NAME="cancel-service",
    POWERTOOLS_METRICS_NAMESPACE="StopTheAI",
    POWERTOOLS_TRACE_DISABLED="true",
)

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from cancel_service import config, runtime
from cancel_service.observability import logger
from devstack.clerk import DEV_ISSUER, DEV_ORIGIN, JwksServer, SigningKey, session_claims
from devstack.provision import create_tables
from devstack.template import load_template
from support import figures
from support.age_stream import AgeStream
from support.constants import AGE_INDEX_SHARDS, AGENT_STATE_MACHINE_ARN, BUS_NAME, OWNER, REGION, TABLE_NAMES
from support.fault_ledger import BULK_TOTALS, TITLE, TOTALS, bulk_totals_line, totals_line
from support.lambda_context import LambdaContext
from support.store import Store, bus_with_capture_queue

# --- time limits, and running under xdist (`make test` runs `pytest -n`) -------------------------


# Seconds a test of these suites may take (pyproject's `timeout` for the others): the first SAM
# test also sets up Docker and runs `sam build`; a proof test runs thousands of cases.
SLOW_SUITE_TIMEOUTS = {"sam": 1800, "proof": 900, "browser": 900}


# Under xdist, the suites whose files take longest are handed out first, so that both workers end
# together: the SAM files (Docker setup, `sam build`, a container per invocation) start at once
# on one worker while the other runs the rest; the many short files fill the gaps at the end.
LONGEST_SUITES_FIRST = ("tests/sam/", "tests/proof/", "tests/local/")


def _suite_rank(item: pytest.Item) -> int:
    ranks = [rank for rank, suite in enumerate(LONGEST_SUITES_FIRST) if item.nodeid.startswith(suite)]
    return ranks[0] if ranks else len(LONGEST_SUITES_FIRST)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        limits = [SLOW_SUITE_TIMEOUTS[name] for name in SLOW_SUITE_TIMEOUTS if item.get_closest_marker(name)]
        if limits and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(max(limits)))
    if hasattr(config, "workerinput"):
        items.sort(key=_suite_rank)  # stable: each file's tests keep their order


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile`, with tests/sam/ one unit: a file's tests share its module fixtures (a
    local stack, a token corpus), the SAM files one session (Docker, `sam build`, moto)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    # Files in the order collected (LONGEST_SUITES_FIRST above), not by their number of tests.
    config.option.loadscopereorder = False

    class FilesWithOneSamSession(LoadFileScheduling):  # type: ignore[misc]  # xdist is untyped
        def _split_scope(self, nodeid: str) -> str:
            path = super()._split_scope(nodeid)
            return "tests/sam" if path.startswith("tests/sam/") else path

    return FilesWithOneSamSession(config, log)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A worker hands the proof suite's figures to the controller."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["figures"] = figures.export()
        output["fault_totals"] = dict(TOTALS)
        output["bulk_fault_totals"] = dict(BULK_TOTALS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:  # noqa: ARG001
    output = getattr(node, "workeroutput", {})
    figures.merge(output.get("figures", {}))
    TOTALS.update(output.get("fault_totals", {}))
    BULK_TOTALS.update(output.get("bulk_fault_totals", {}))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if hasattr(terminalreporter.config, "workerinput"):
        return  # a worker: the controller prints
    if BULK_TOTALS["bulks"]:
        figures.record(TITLE, bulk_totals_line())
    if TOTALS["cases"]:
        figures.record(TITLE, totals_line())
    figures.print_figures(terminalreporter)


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey.generate("ins_test_key_1")


@pytest.fixture
def jwks(signing_key: SigningKey) -> Iterator[JwksServer]:
    with JwksServer([signing_key]) as server:
        yield server


def _per_container_caches() -> list[Any]:
    return [
        value
        for module in (config, runtime)
        for value in vars(module).values()
        if hasattr(value, "cache_clear")
    ]


@pytest.fixture(autouse=True)
def fresh_container() -> Iterator[None]:
    """Each test is a new Lambda container: configuration, clients and JWKS cache built anew."""
    for cached in _per_container_caches():
        cached.cache_clear()
    yield
    for cached in _per_container_caches():
        cached.cache_clear()


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, jwks: JwksServer) -> None:
    values = {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_SERVICE_NAME": "cancel-service",
        "POWERTOOLS_METRICS_NAMESPACE": "StopTheAI",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "MESSAGES_TABLE": TABLE_NAMES["MessagesTable"],
        "PROJECTS_TABLE": TABLE_NAMES["ProjectsTable"],
        "BULK_STATE_TABLE": TABLE_NAMES["BulkStateTable"],
        "BULK_STATE_RETENTION_SECONDS": "259200",
        "AGE_INDEX_TABLE": TABLE_NAMES["AgeIndexTable"],
        "AGE_INDEX_SHARDS": str(AGE_INDEX_SHARDS),
        "EVENT_BUS_NAME": BUS_NAME,
        "CLERK_ISSUER": DEV_ISSUER,
        "CLERK_JWKS_URL": jwks.url,
        "CLERK_AUTHORIZED_PARTIES": DEV_ORIGIN,
        "AGENT_STATE_MACHINE_ARN": AGENT_STATE_MACHINE_ARN,
        # Fast enough that no test waits for the bulk lane's pace (tests of the pace set their own).
        "STOP_EXECUTIONS_PER_SECOND": "1000",
        "STOP_PACE_TABLE": TABLE_NAMES["StopPaceTable"],
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    for name in ("CLERK_JWT_KEY", "CLERK_PUBLISHABLE_KEY", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


# A fixture's dependency is a parameter (pytest.mark.usefixtures does not apply to fixtures).
@pytest.fixture
def store(environment: None, template: dict[str, Any]) -> Iterator[Store]:  # noqa: ARG001
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        create_tables(dynamodb, TABLE_NAMES, template)
        events, sqs = boto3.client("events"), boto3.client("sqs")
        queue_url = bus_with_capture_queue(events, sqs, BUS_NAME, "published-events")
        yield Store(dynamodb, events, sqs, queue_url)


@pytest.fixture
def age_stream(store: Store, template: dict[str, Any]) -> AgeStream:
    """The messages table's stream, delivered to the age index's function when the test says."""
    # moto knows the streams endpoint by its region, not botocore's newer endpoint by account.
    streams = boto3.client("dynamodbstreams", config=Config(account_id_endpoint_mode="disabled"))
    return AgeStream(store.dynamodb, streams, TABLE_NAMES["MessagesTable"], template)


@pytest.fixture(autouse=True)
def _age_index_follows_the_stream(request: pytest.FixtureRequest) -> None:
    """Wherever a test has the template's tables, the age index is kept from their stream."""
    if "store" in request.fixturenames:
        request.getfixturevalue("caught_up_age_index")


@pytest.fixture
def caught_up_age_index(age_stream: AgeStream, monkeypatch: pytest.MonkeyPatch) -> AgeStream:
    """An age index whose function has handled every change before each reading (no lag):
    what the bulk by age and the sweep read once the stream is delivered."""
    from cancel_service.adapters.age_index import AgeIndex

    read = AgeIndex.stale_page

    def caught_up(index: AgeIndex, cutoff: str, after: str | None, limit: int) -> Any:
        age_stream.deliver()
        return read(index, cutoff, after, limit)

    monkeypatch.setattr(AgeIndex, "stale_page", caught_up)
    return age_stream


@pytest.fixture
def mint(signing_key: SigningKey) -> Callable[..., str]:
    """Mint a session token: `mint(user_id, org=..., headers=..., key=..., **claim overrides)`;
    a claim override of None removes the claim."""

    def _mint(
        user_id: str = OWNER,
        *,
        org: str | None = None,
        headers: dict[str, Any] | None = None,
        key: SigningKey | None = None,
        **overrides: Any,
    ) -> str:
        claims = session_claims(user_id, org_id=org)
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return (key or signing_key).sign(claims, headers)

    return _mint


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The JSON log lines the function writes during the test (Powertools' handler, redirected)."""

    buffer = io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(buffer)  # type: ignore[attr-defined]
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    handler.setStream(previous)  # type: ignore[attr-defined]
