"""Fixtures of the proof suite: faults planned at the HTTP layer of the AWS clients, and the
figures its tests measured, printed after the run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.fault_ledger import BULK_TOTALS, TITLE, TOTALS, bulk_totals_line
from support.figures import print_figures, record
from support.http_faults import FaultPlan, install


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    print_figures(terminalreporter)


@pytest.fixture(scope="session", autouse=True)
def fault_matrix_totals() -> Iterator[None]:
    """After the run, the fault matrix's totals under its figures (when any case ran)."""
    yield
    if BULK_TOTALS["bulks"]:
        record(TITLE, bulk_totals_line())
    if not TOTALS["cases"]:
        return
    record(
        TITLE,
        f"totals: cases {TOTALS['cases']}, 500s: {TOTALS['500']},"
        f" wrong 200s (or wrong lists of an event function): {TOTALS['wrong answers']},"
        f" first invocation failed: {TOTALS['failed first']},"
        f" messages cancelled but never listed: {TOTALS['unlisted']} (in {TOTALS['cases unlisted']} cases),"
        f" events published again by a retried event under its request id: {TOTALS['republished']}",
    )


@pytest.fixture
def plan(monkeypatch: pytest.MonkeyPatch) -> FaultPlan:
    return install(monkeypatch)
