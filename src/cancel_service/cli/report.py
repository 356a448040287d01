"""The bulk's `Bulk Cancel Completed` report, as the operator reads it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any


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


def _took(report: dict[str, Any]) -> str:
    try:
        started = datetime.fromisoformat(str(report["startedAt"]).replace("Z", "+00:00"))
        finished = datetime.fromisoformat(str(report["finishedAt"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return ""
    return f" in {(finished - started).total_seconds():.1f} s"


def report_lines(report: dict[str, Any]) -> Iterator[str]:
    dry_run = report.get("dryRun") is True
    yield (
        f"bulk {report.get('bulkId')} {report.get('outcome')}{_took(report)}"
        + (" (dry run: nothing was changed)" if dry_run else "")
    )
    rows = [
        ("selection", describe_selector(report.get("selector"))),
        ("selected", report.get("selected")),
        ("cancelled", report.get("cancelled")),
        ("already finished", report.get("alreadyFinished")),
        ("failed", report.get("failed")),
        ("invocations", report.get("invocations")),
        ("started", report.get("startedAt")),
        ("finished", report.get("finishedAt")),
    ]
    if report.get("error"):
        rows.append(("error", report["error"]))
    for label, value in rows:
        yield f"  {label:<17} {value}"
