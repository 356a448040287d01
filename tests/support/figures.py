"""The proof suite's figures: tests add lines under a title; tests/proof/conftest.py prints them
after the run."""

from __future__ import annotations

from collections import defaultdict

import pytest

_FIGURES: dict[str, list[str]] = defaultdict(list)


def record(title: str, *lines: str) -> None:
    _FIGURES[title].extend(lines)


def print_figures(terminalreporter: pytest.TerminalReporter) -> None:
    for title, lines in _FIGURES.items():
        terminalreporter.section(title)
        for line in lines:
            terminalreporter.write_line(line)
