"""Bulk cancel: `Bulk Cancel Requested` on the cancel bus (any source but app.messages), its own
continuations, and the scheduled sweep of messages stuck in processing (same event shape).

A request that can never succeed (a detail of no bulk shape, the cancel events' own source, a
position it may not carry, a known bulkId with another selection) is logged as rejected and the
invocation succeeds: retrying it could never help, and it must change nothing. An event of work
that is done or under way (a retry, a second delivery, a replay) succeeds doing nothing. Any
other failure is raised for Lambda's retries.
"""

from __future__ import annotations

import uuid
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from cancel_service.adapters.bulk_events import BULK_SOURCE
from cancel_service.adapters.cancel_events import SOURCE as CANCEL_EVENT_SOURCE
from cancel_service.errors import BulkIdInUse, InvalidBulkRequest
from cancel_service.event_models import BulkCancelRequested
from cancel_service.observability import logger, metrics, tracer
from cancel_service.runtime import bulk_cancel_service


def _rejected(why: str, **details: Any) -> dict[str, Any]:
    metrics.add_metric(name="BulkCancelsRejected", unit=MetricUnit.Count, value=1)
    logger.warning(f"bulk cancel rejected: {why}", extra=details)
    return {"accepted": False}


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.EVENT_BRIDGE, log_event=False, clear_state=True
)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        request = parse(event=event, model=BulkCancelRequested)
    except ValidationError as error:
        return _rejected(
            "detail matches no bulk shape", errors=error.errors(include_url=False, include_input=False)
        )
    if request.source == CANCEL_EVENT_SOURCE:
        # The rule already leaves these out; the function does not rely on it.
        return _rejected("the per-message cancel events' source may not request a bulk")
    selection = request.detail
    # A bulk without an id gets a fresh one; its continuations carry it.
    bulk_id = selection.bulk_id or uuid.uuid4().hex
    logger.append_keys(
        bulk_id=bulk_id, bulk_shape=type(selection).__name__, resumed=selection.cursor is not None
    )
    try:
        run = bulk_cancel_service().run(
            selection,
            bulk_id,
            context.get_remaining_time_in_millis,
            continuation=request.source == BULK_SOURCE,
        )
    except BulkIdInUse as error:
        metrics.add_metric(name="BulkIdConflicts", unit=MetricUnit.Count, value=1)
        return _rejected(str(error))
    except InvalidBulkRequest as error:
        return _rejected(str(error))
    if run.skipped is not None:
        # A retry, a second delivery or a replay of work that is done or under way: nothing to do.
        metrics.add_metric(name="BulkEventsSkipped", unit=MetricUnit.Count, value=1)
        logger.info(f"bulk event skipped: {run.skipped}")
    metrics.add_metric(name="MessagesCancelled", unit=MetricUnit.Count, value=len(run.cancelled_ids))
    if run.outcome is not None:
        metrics.add_metric(name=f"BulkCancels{run.outcome.capitalize()}", unit=MetricUnit.Count, value=1)
    logger.info(
        "bulk cancel step done",
        extra={"cancelled_count": len(run.cancelled_ids), "continued": run.continued},
    )
    answer: dict[str, Any] = {
        "accepted": True,
        "messageIds": list(run.cancelled_ids),
        "continued": run.continued,
    }
    if run.outcome is not None:
        answer["outcome"] = run.outcome
    return answer
