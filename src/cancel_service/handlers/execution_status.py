"""`Step Functions Execution Status Change` of the agent's state machine (default bus rule):
an execution ended FAILED, TIMED_OUT or ABORTED. See agent_outcomes for what that means.

Any other event (another status, another shape) is logged as rejected and not retried: the rule
already leaves such events out, and retrying one could never help.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from cancel_service.event_models import ExecutionStatusChanged
from cancel_service.observability import logger, metrics, tracer
from cancel_service.runtime import agent_outcomes


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.EVENT_BRIDGE, log_event=False, clear_state=True
)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(raw_event: dict[str, Any], _context: LambdaContext) -> dict[str, Any]:
    try:
        event = parse(event=raw_event, model=ExecutionStatusChanged)
    except ValidationError as error:
        metrics.add_metric(name="ExecutionEventsRejected", unit=MetricUnit.Count, value=1)
        logger.warning(
            "execution status event rejected: not an ended agent execution",
            extra={"errors": error.errors(include_url=False, include_input=False)},
        )
        return {"rejected": True}
    detail = event.detail
    logger.append_keys(execution_arn=detail.execution_arn, execution_status=detail.status)
    outcome = agent_outcomes().execution_ended(
        detail.execution_arn, detail.status, event.stopped_at, event.id
    )
    if outcome.failed_ids:
        metrics.add_metric(name="MessagesFailedByAgent", unit=MetricUnit.Count, value=len(outcome.failed_ids))
    if outcome.cancelled_ids:
        metrics.add_metric(name="MessagesCancelled", unit=MetricUnit.Count, value=len(outcome.cancelled_ids))
    for stop in outcome.confirmed_stops:
        # How long a cancel takes to really stop its agent: the number an operator watches.
        metrics.add_metric(name="AgentStopLatency", unit=MetricUnit.Milliseconds, value=stop.latency_ms)
    logger.info(
        "execution end handled",
        extra={
            "failed_ids": outcome.failed_ids,
            "cancelled_ids": outcome.cancelled_ids,
            "confirmed_stop_ids": [stop.message_id for stop in outcome.confirmed_stops],
        },
    )
    return {
        "failedIds": list(outcome.failed_ids),
        "cancelledIds": list(outcome.cancelled_ids),
        "agentStoppedIds": [stop.message_id for stop in outcome.confirmed_stops],
    }
