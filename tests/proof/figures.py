"""The proof suite's figures: tests add lines under a title; they are printed after the run.

Loaded as a plugin (`pytest_plugins = ["figures"]`) by the proof tests that measure something;
they import it first, so pytest is told not to rewrite it: PYTEST_DONT_REWRITE
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

_FIGURES: dict[str, list[str]] = defaultdict(list)


def record(title: str, *lines: str) -> None:
    _FIGURES[title].extend(lines)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for title, lines in _FIGURES.items():
        terminalreporter.section(title)
        for line in lines:
            terminalreporter.write_line(line)
