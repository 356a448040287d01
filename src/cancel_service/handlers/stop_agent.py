"""Stop target: `Message Cancel Requested` events that carry an executionArn (cancel bus rule).

EventBridge invokes this function asynchronously. A failure is raised, not swallowed, so that
Lambda's retries and then its on-failure destination (a dead-letter queue) take over. An event
that can never succeed (not a cancel event, or an execution of another state machine than the
agent's) is logged as rejected and not retried.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from cancel_service.errors import NotAnAgentExecution
from cancel_service.event_models import MessageCancelRequested
from cancel_service.observability import logger, metrics, tracer
from cancel_service.runtime import agent_executions


def stop_cause(reason: str, requested_by: str) -> str:
    return f"{reason} requested by {requested_by}"


def _rejected(why: str, **details: Any) -> dict[str, Any]:
    metrics.add_metric(name="AgentStopsRejected", unit=MetricUnit.Count, value=1)
    logger.warning(f"agent stop rejected: {why}", extra=details)
    return {"stopRequested": False, "rejected": True}


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.EVENT_BRIDGE, log_event=False, clear_state=True
)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        detail = parse(event=event, model=MessageCancelRequested).detail
    except ValidationError as error:
        return _rejected("not a cancel event", errors=error.errors(include_url=False, include_input=False))
    logger.append_keys(message_id=detail.message_id, execution_arn=detail.execution_arn)
    try:
        stopped = agent_executions().stop(
            detail.execution_arn, stop_cause(detail.reason, detail.requested_by)
        )
    except NotAnAgentExecution:
        return _rejected("the execution is not one of the agent's state machine")
    metrics.add_metric(
        name="AgentStopsRequested" if stopped else "AgentStopsNotNeeded", unit=MetricUnit.Count, value=1
    )
    logger.info("agent stop handled", extra={"stopped": stopped})
    return {"messageId": detail.message_id, "stopRequested": stopped}
