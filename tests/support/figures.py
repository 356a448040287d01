"""The proof suite's figures: tests add lines under a title; tests/conftest.py prints them after
the run. Under xdist each worker hands its figures to the controller, which prints them all."""

from __future__ import annotations

from collections import defaultdict

import pytest

_FIGURES: dict[str, list[str]] = defaultdict(list)


def record(title: str, *lines: str) -> None:
    _FIGURES[title].extend(lines)


def export() -> dict[str, list[str]]:
    return dict(_FIGURES)


def merge(exported: dict[str, list[str]]) -> None:
    for title, lines in exported.items():
        record(title, *lines)


def print_figures(terminalreporter: pytest.TerminalReporter) -> None:
    for title, lines in _FIGURES.items():
        terminalreporter.section(title)
        for line in lines:
            terminalreporter.write_line(line)
