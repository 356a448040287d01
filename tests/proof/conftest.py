"""The proof suite prints the figures its tests measured after the run."""

from __future__ import annotations

import pytest

from support.figures import print_figures


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    print_figures(terminalreporter)
