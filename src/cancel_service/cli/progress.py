"""Following a bulk to its report: its running totals, shown as they arrive (a live line on a
terminal, plain lines elsewhere)."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from cancel_service.adapters.bulk_events import BULK_COMPLETED, BULK_SOURCE

if TYPE_CHECKING:
    from cancel_service.cli.watch import ReportWatch

# One receive waits at most this long, so the live line and the deadline stay responsive.
RECEIVE_WAIT_SECONDS = 1
BAR_WIDTH = 24


@dataclass(frozen=True, slots=True)
class Progress:
    """A continuation's running totals (`cursor.progress`)."""

    selected: int
    cancelled: int
    already_finished: int
    failed: int
    invocations: int

    @classmethod
    def of(cls, detail: dict[str, Any]) -> Progress | None:
        cursor = detail.get("cursor")
        totals = cursor.get("progress") if isinstance(cursor, dict) else None
        if not isinstance(totals, dict):
            return None

        def count(name: str) -> int:
            value = totals.get(name)
            return value if isinstance(value, int) else 0

        return cls(
            count("selected"),
            count("cancelled"),
            count("alreadyFinished"),
            count("failed"),
            count("invocations"),
        )

    def line(self) -> str:
        return (
            f"{self.cancelled}/{self.selected} cancelled, {self.already_finished} already finished, "
            f"{self.failed} failed, {self.invocations} invocation{'s' if self.invocations != 1 else ''}"
        )


class ProgressDisplay:
    """On a terminal, one line redrawn in place (bar of cancelled / selected so far, spinner);
    elsewhere, one plain line per progress event."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._live = stream.isatty()
        self._spinner = itertools.cycle("|/-\\")
        self._latest: Progress | None = None
        self._started = time.monotonic()
        self._drawn = 0

    @property
    def latest(self) -> Progress | None:
        return self._latest

    def update(self, progress: Progress) -> None:
        # Continuations split over several events may arrive out of order; the line never goes
        # back to an earlier total.
        if self._latest is not None and progress.invocations < self._latest.invocations:
            return
        self._latest = progress
        if not self._live:
            print(f"progress: {progress.line()}", file=self._stream, flush=True)
        self.tick()

    def tick(self) -> None:
        if not self._live:
            return
        elapsed = int(time.monotonic() - self._started)
        if self._latest is None:
            text = f"{next(self._spinner)} waiting for the first progress ({elapsed}s)"
        else:
            share = self._latest.cancelled / self._latest.selected if self._latest.selected else 0.0
            filled = round(BAR_WIDTH * min(share, 1.0))
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            text = f"{next(self._spinner)} [{bar}] {self._latest.line()} ({elapsed}s)"
        self._stream.write("\r" + text.ljust(self._drawn))
        self._stream.flush()
        self._drawn = len(text)

    def close(self) -> None:
        """End the live line, so that what follows starts on a line of its own."""
        if self._live and self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = 0


def follow(watch: ReportWatch, timeout_seconds: float, display: ProgressDisplay) -> dict[str, Any] | None:
    """The bulk's report, showing its progress meanwhile; None when none came in time."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        for event in watch.receive(RECEIVE_WAIT_SECONDS):
            detail = event.get("detail")
            if event.get("source") != BULK_SOURCE or not isinstance(detail, dict):
                continue  # this command's own request and probes
            if event.get("detail-type") == BULK_COMPLETED:
                return detail
            progress = Progress.of(detail)
            if progress is not None:
                display.update(progress)
        display.tick()
    return None
