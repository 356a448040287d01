"""The API's document on the local stack: served as /openapi.json with a Swagger UI at /docs, and
schemathesis run from it against the stack, every check on, with the demo user's token."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from devstack.constants import ROOT
from support.local_stack import StackProcess, http

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
MAX_EXAMPLES = 100
SEED = 20261124
RUN_TIMEOUT_SECONDS = 240
# API Gateway HTTP API answers a method with no route 404 {"message":"Not Found"}, in production
# as on this stack; nothing in the contract promises the 405 this check expects.
EXCLUDED_CHECKS = "unsupported_method"


@pytest.fixture(scope="module")
def stack() -> Iterator[StackProcess]:
    with StackProcess() as running:
        yield running


def test_openapi_json_is_the_yaml_document(stack: StackProcess):
    answer = http("GET", f"{stack.origin}/openapi.json")

    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.body == yaml.safe_load((ROOT / "openapi.yaml").read_text())


def test_docs_page_loads_swagger_ui_from_the_stack_only(stack: StackProcess):
    page = http("GET", f"{stack.origin}/docs")

    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    # `data:` URLs are inline (the page's empty icon): nothing is fetched for them.
    referenced = [
        url for url in re.findall(r'(?:src|href)="([^"]+)"', page.body) if not url.startswith("data:")
    ]
    assert "/docs/static/swagger-ui-bundle.min.js" in referenced
    assert "/openapi.json" in page.body
    assert not [url for url in referenced if not url.startswith("/docs/static/")], referenced
    for url in referenced:
        asset = http("GET", f"{stack.origin}{url}")
        assert asset.status == 200, url
    script = http("GET", f"{stack.origin}/docs/static/swagger-ui-bundle.min.js")
    assert script.headers["Content-Type"] in ("text/javascript", "application/javascript")


@pytest.mark.browser
def test_docs_page_renders_the_operation_and_every_response(stack: StackProcess):
    # Imported here so that a machine without Playwright fails this test, not the whole run.
    from playwright.sync_api import sync_playwright

    document = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    documented = list(document["paths"]["/api/messages/cancel"]["post"]["responses"])
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"], headless=True
        )
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on(
                "console", lambda message: errors.append(message.text) if message.type == "error" else None
            )
            page.goto(f"{stack.origin}/docs")
            page.click(".opblock-summary", timeout=20_000)
            shown = page.locator(".responses-table .response-col_status").all_inner_texts()
            path = page.inner_text(".opblock-summary-path")
        finally:
            browser.close()

    assert path == "/api/messages/cancel"
    assert [code for code in shown if code != "Code"] == documented
    assert errors == []


@pytest.mark.parametrize(
    "path", ["/docs/static/../__init__.py", "/docs/static/%2e%2e/__init__.py", "/docs/static/", "/docs/x"]
)
def test_docs_serves_nothing_but_the_package_assets(stack: StackProcess, path: str):
    assert http("GET", f"{stack.origin}{path}").status == 404


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "TRACE", "QUERY"])
def test_a_method_with_no_route_is_api_gateways_404(stack: StackProcess, method: str):
    answer = http(method, f"{stack.origin}/api/messages/cancel")

    assert answer.status == 404
    assert answer.body == {"message": "Not Found"}


@pytest.mark.proof
def test_schemathesis_finds_no_failure_against_the_local_stack(stack: StackProcess, tmp_path: Path):
    minted = stack.devstack("token")
    assert minted.returncode == 0, minted.stderr
    report_path, exchanges_path = tmp_path / "report.json", tmp_path / "exchanges.har"
    started = time.monotonic()

    run = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{stack.origin}/openapi.json",
            "--url",
            stack.origin,
            "--header",
            f"Authorization: Bearer {minted.stdout.strip()}",
            "--checks",
            "all",
            "--exclude-checks",
            EXCLUDED_CHECKS,
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--generation-database",
            "none",
            "--report",
            "json,har",
            "--report-json-path",
            str(report_path),
            "--report-har-path",
            str(exchanges_path),
            "--no-color",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )

    elapsed = time.monotonic() - started
    report = json.loads(report_path.read_text())
    exchanges = json.loads(exchanges_path.read_text())["log"]["entries"]
    statuses = Counter(exchange["response"]["status"] for exchange in exchanges)
    cases = report["test_cases"]
    print(
        f"\nschemathesis {report['schemathesis_version']}, seed {SEED}, --max-examples {MAX_EXAMPLES}, "
        f"checks all but {EXCLUDED_CHECKS}: {cases['generated']} cases, {len(exchanges)} requests, "
        f"{cases['with_failures']} cases with failures ({cases['unique_failures']} unique), "
        f"{cases['errored']} errored, in {elapsed:.1f} s; statuses {dict(sorted(statuses.items()))}"
    )
    failures = run.stdout[run.stdout.find("FAILURES") :] if "FAILURES" in run.stdout else run.stdout[-3000:]
    assert run.returncode == 0, f"{failures}\n{run.stderr[-2000:]}"
    assert cases["with_failures"] == 0
    assert cases["errored"] == 0
    assert not [status for status in statuses if status >= 500], statuses
    # The run reached the handler along each of its paths, not only its front door.
    assert {200, 400, 401, 404, 415} <= set(statuses), statuses
