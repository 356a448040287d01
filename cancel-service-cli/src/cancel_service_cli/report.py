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


def report_lines(report: BulkReport) -> Iterator[str]:
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
    if report.error:
        rows.append(("error", report.error))
    for label, value in rows:
        yield f"  {label:<17} {value}"
