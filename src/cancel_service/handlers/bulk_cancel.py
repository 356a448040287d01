"""Bulk cancel: `Bulk Cancel Requested` on the cancel bus (any source but app.messages), its own
continuations, and the scheduled sweep of messages stuck in processing (same event shape).

A request that can never succeed (a detail of no bulk shape, the cancel events' own source, a
position it may not carry) is logged as rejected and the invocation succeeds: retrying it could
never help, and it must change nothing. Any other failure is raised for Lambda's retries.
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
from cancel_service.errors import InvalidBulkRequest
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
        progress = bulk_cancel_service().run(
            selection,
            bulk_id,
            context.get_remaining_time_in_millis,
            continuation=request.source == BULK_SOURCE,
        )
    except InvalidBulkRequest as error:
        return _rejected(str(error))
    metrics.add_metric(name="MessagesCancelled", unit=MetricUnit.Count, value=len(progress.cancelled_ids))
    if progress.outcome is not None:
        metrics.add_metric(name=f"BulkCancels{progress.outcome.capitalize()}", unit=MetricUnit.Count, value=1)
    logger.info(
        "bulk cancel step done",
        extra={"cancelled_count": len(progress.cancelled_ids), "continued": progress.continued},
    )
    answer: dict[str, Any] = {
        "accepted": True,
        "messageIds": list(progress.cancelled_ids),
        "continued": progress.continued,
    }
    if progress.outcome is not None:
        answer["outcome"] = progress.outcome
    return answer
