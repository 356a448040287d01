"""Bulk cancel: `Bulk Cancel Requested` on the cancel bus (any source but app.messages), its own
continuations, and the scheduled sweep of messages stuck in processing (same event shape).

An invalid detail is logged as rejected and the invocation succeeds: retrying it could never
help, and it must change nothing. Any other failure is raised for Lambda's retries.
"""

from __future__ import annotations

import uuid
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from cancel_service.event_models import BulkCancelRequested
from cancel_service.observability import logger, metrics, tracer
from cancel_service.runtime import bulk_cancel_service


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.EVENT_BRIDGE, log_event=False, clear_state=True
)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        request = parse(event=event, model=BulkCancelRequested)
    except ValidationError as error:
        metrics.add_metric(name="BulkCancelsRejected", unit=MetricUnit.Count, value=1)
        logger.warning(
            "bulk cancel rejected: detail matches no bulk shape",
            extra={"errors": error.errors(include_url=False, include_input=False)},
        )
        return {"accepted": False}
    selection = request.detail
    logger.append_keys(bulk_shape=type(selection).__name__, resumed=selection.cursor is not None)
    # A bulk without an id gets a fresh one; its continuations carry it.
    bulk_id = selection.bulk_id or uuid.uuid4().hex
    logger.append_keys(bulk_id=bulk_id)
    progress = bulk_cancel_service().run(selection, bulk_id, context.get_remaining_time_in_millis)
    metrics.add_metric(name="MessagesCancelled", unit=MetricUnit.Count, value=len(progress.cancelled_ids))
    logger.info(
        "bulk cancel step done",
        extra={"cancelled_count": len(progress.cancelled_ids), "continued": progress.continued},
    )
    return {"accepted": True, "messageIds": list(progress.cancelled_ids), "continued": progress.continued}
