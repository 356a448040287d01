"""The bulk's `Bulk Cancel Completed` report (the service's own model of it), as the operator reads it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from cancel_service.event_models import BulkReport


def describe_selector(selector: Any) -> str:
    if not isinstance(selector, dict):
        return json.dumps(selector)
    if "projectIds" in selector:
        return "projects " + ", ".join(map(str, selector["projectIds"]))
    if "ownerId" in selector:
        return f"every project of {selector['ownerId']}"
    if "olderThanSeconds" in selector:
        return f"processing with no update for {selector['olderThanSeconds']} s"
    return json.dumps(selector)


def _took(report: BulkReport) -> str:
    started = datetime.fromisoformat(report.started_at.replace("Z", "+00:00"))
    finished = datetime.fromisoformat(report.finished_at.replace("Z", "+00:00"))
    return f" in {(finished - started).total_seconds():.1f} s"


def cap_line(report: BulkReport, cap: int | None) -> str | None:
    """What the cap (--max-messages) did: where the bulk stopped and what it left, or, for a dry
    run (which counts its whole selection), what a run would cancel and leave."""
    if cap is None:
        return None
    if report.dry_run:
        if report.selected > cap:
            left = report.selected - cap
            return f"{cap}: a run would cancel {cap} of the {report.selected} selected, leaving {left}"
        return f"{cap}: not reached (a run would cancel up to {report.selected})"
    if report.outcome == "capped":
        return (
            f"{cap}: reached; the rest of the selection is still processing "
            "(a dry run with this cap counts it)"
        )
    return f"{cap}: not reached"


def report_lines(report: BulkReport, cap: int | None = None) -> Iterator[str]:
    yield (
        f"bulk {report.bulk_id} {report.outcome}{_took(report)}"
        + (" (dry run: nothing was changed)" if report.dry_run else "")
    )
    rows: list[tuple[str, object]] = [
        ("selection", describe_selector(report.selector)),
        ("selected", report.selected),
        ("cancelled", report.cancelled),
        ("already finished", report.already_finished),
        ("failed", report.failed),
        ("invocations", report.invocations),
        ("started", report.started_at),
        ("finished", report.finished_at),
    ]
    capped = cap_line(report, cap)
    if capped:
        rows.insert(2, ("cap", capped))
    if report.error:
        rows.append(("error", report.error))
    for label, value in rows:
        yield f"  {label:<17} {value}"
