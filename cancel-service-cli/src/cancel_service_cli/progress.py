"""Following a bulk to its report: its running totals, shown as they arrive (a live line on a
terminal, plain lines elsewhere). They come with each continuation of the bulk, and, when the
command knows the stack, from the bulk's state, saved after every page: a bulk that fits in one
invocation shows its progress too, and its report is read there as well as from the bus."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from pydantic import ValidationError

from cancel_service.adapters.bulk_events import BULK_COMPLETED, BULK_SOURCE
from cancel_service.event_models import BulkProgress, BulkReport
from cancel_service_cli.arguments import PROG

if TYPE_CHECKING:
    from cancel_service.event_models import BulkState
    from cancel_service_cli.bulk_state import BulkStates
    from cancel_service_cli.watch import ReportWatch

# One receive waits at most this long, so the live line and the deadline stay responsive.
RECEIVE_WAIT_SECONDS = 1
BAR_WIDTH = 24
# How often the bulk's state is read (one GetItem) while following it.
STATE_READ_EVERY_SECONDS = 1.0
# Off a terminal, how often a line says the command still waits when nothing else was shown.
QUIET_LINE_EVERY_SECONDS = 15


def progress_of(detail: dict[str, Any]) -> BulkProgress | None:
    """A continuation's running totals (`cursor.progress`), if it carries them."""
    cursor = detail.get("cursor")
    totals = cursor.get("progress") if isinstance(cursor, dict) else None
    try:
        return BulkProgress.model_validate(totals)
    except ValidationError:
        return None


@dataclass(frozen=True, slots=True)
class SentRequest:
    """What the command asked for: a report is this request's only when it matches it all (a
    bulkId may have served another bulk before, over another selection or as a dry run)."""

    bulk_id: str
    dry_run: bool
    selector: dict[str, Any]
    sent_at: str
    digest: str  # of the request, as the bulk's state records it

    def reported_by(self, report: BulkReport) -> bool:
        return (
            report.bulk_id == self.bulk_id
            and report.dry_run == self.dry_run
            and report.selector == self.selector
            and report.started_at >= self.sent_at
        )

    def started(self, state: BulkState) -> bool:
        """The state is of the bulk this request started (not of an earlier one with its id)."""
        return state.digest == self.digest and state.started_at >= self.sent_at


class ProgressDisplay:
    """On a terminal, one line redrawn in place (bar of cancelled / selected so far, spinner);
    elsewhere, one plain line per progress event."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._live = stream.isatty()
        self._spinner = itertools.cycle("|/-\\")
        self._latest: BulkProgress | None = None
        self._started = time.monotonic()
        self._last_line = self._started
        self._drawn = 0

    @property
    def latest(self) -> BulkProgress | None:
        return self._latest

    def update(self, progress: BulkProgress) -> None:
        # Continuations split over several events may arrive out of order; the line never goes
        # back to an earlier total.
        if self._latest is not None and progress.invocations < self._latest.invocations:
            return
        if progress == self._latest:
            return
        self._latest = progress
        if not self._live:
            self._print(f"progress: {progress.line()}")
            return
        self.tick()

    def _print(self, line: str) -> None:
        print(line, file=self._stream, flush=True)
        self._last_line = time.monotonic()

    def tick(self) -> None:
        elapsed = int(time.monotonic() - self._started)
        if not self._live:
            if time.monotonic() - self._last_line >= QUIET_LINE_EVERY_SECONDS:
                self._print(
                    f"waiting ({elapsed}s): " + (self._latest.line() if self._latest else "no totals yet")
                )
            return
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


def follow(
    watch: ReportWatch,
    give_up_at: float,
    display: ProgressDisplay,
    sent: SentRequest,
    log: TextIO,
    states: BulkStates | None = None,
) -> BulkReport | None:
    """The report of the request sent, showing its progress meanwhile; None when none came by
    `give_up_at` (time.monotonic())."""
    next_read = time.monotonic()
    while (left := give_up_at - time.monotonic()) > 0:
        if states is not None and time.monotonic() >= next_read:
            next_read = time.monotonic() + STATE_READ_EVERY_SECONDS
            state = states.read(sent.bulk_id)
            if state is not None and sent.started(state):
                if state.report is not None:
                    return state.report
                if state.progress.invocations:  # 0: no invocation saved a page yet
                    display.update(state.progress)
        for event in watch.receive(RECEIVE_WAIT_SECONDS if left >= RECEIVE_WAIT_SECONDS else 0):
            detail = event.get("detail")
            if event.get("source") != BULK_SOURCE or not isinstance(detail, dict):
                continue  # this command's own request and probes
            if event.get("detail-type") == BULK_COMPLETED:
                report = _report(detail)
                if report is not None and sent.reported_by(report):
                    return report
                display.close()
                print(f"{PROG}: a report of another bulk with id {sent.bulk_id} ignored", file=log)
                continue
            progress = progress_of(detail)
            if progress is not None:
                display.update(progress)
        display.tick()
    return None


def _report(detail: dict[str, Any]) -> BulkReport | None:
    try:
        return BulkReport.model_validate(detail)
    except ValidationError:
        return None
