"""Stop targets: the two stop queues, fed by the cancel bus's two stop rules with
`Message Cancel Requested` events that carry an executionArn (one SQS record = one event).

- The user lane (`user_lane_handler`): stops a Clerk user asked for. Not paced: a user's Stop
  never waits behind a bulk, and its messages are stopped together.
- The bulk lane (`bulk_lane_handler`): stops of bulks, the stale sweep and every other `system:`
  trigger, paced at STOP_EXECUTIONS_PER_SECOND in all, across its instances, retries included.

Both report record by record (ReportBatchItemFailures): what failed or was not reached in time
goes back to its queue; see cancel_service.core.agent_stops for the rules.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from cancel_service.core.agent_stops import AgentStops
from cancel_service.observability import logger, metrics, tracer
from cancel_service.runtime import bulk_lane_stops, user_lane_stops


def _stop_batch(
    lane: str, stops: AgentStops, event: dict[str, Any], context: LambdaContext
) -> dict[str, Any]:
    metrics.add_dimension(name="Lane", value=lane)
    outcomes = stops.stop_batch(event["Records"], lambda: context.get_remaining_time_in_millis() / 1000)
    for _, outcome in outcomes:
        metrics.add_metric(name=outcome.value, unit=MetricUnit.Count, value=1)
    # A batch whose every stop failed is reported record by record too, not raised: the function's
    # Errors metric stays for its own failures (a batch of one throttled stop says nothing of the code).
    retried = [record_id for record_id, outcome in outcomes if outcome.retried]
    return {"batchItemFailures": [{"itemIdentifier": record_id} for record_id in retried]}


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def user_lane_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _stop_batch("user", user_lane_stops(), event, context)


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def bulk_lane_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _stop_batch("bulk", bulk_lane_stops(), event, context)
