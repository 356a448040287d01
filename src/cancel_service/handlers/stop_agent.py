"""Stop target: `Message Cancel Requested` events that carry an executionArn (cancel bus rule).

EventBridge invokes this function asynchronously. A failure is raised, not swallowed, so that
Lambda's retries and then its on-failure destination (a dead-letter queue) take over.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from cancel_service.event_models import MessageCancelRequested
from cancel_service.observability import logger, metrics, tracer
from cancel_service.runtime import agent_executions


def stop_cause(reason: str, requested_by: str) -> str:
    return f"{reason} requested by {requested_by}"


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.EVENT_BRIDGE, log_event=False, clear_state=True
)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@event_parser(model=MessageCancelRequested)
def handler(event: MessageCancelRequested, context: LambdaContext) -> dict[str, Any]:
    detail = event.detail
    logger.append_keys(message_id=detail.message_id, execution_arn=detail.execution_arn)
    stopped = agent_executions().stop(detail.execution_arn, stop_cause(detail.reason, detail.requested_by))
    metrics.add_metric(
        name="AgentStopsRequested" if stopped else "AgentStopsNotNeeded", unit=MetricUnit.Count, value=1
    )
    logger.info("agent stop handled", extra={"stopped": stopped})
    return {"messageId": detail.message_id, "stopRequested": stopped}
