"""Stop target: the stop queue, fed by the cancel bus rule with `Message Cancel Requested` events
that carry an executionArn (one SQS record = one EventBridge event, as EventBridge delivered it).

Records are handled one after the other and reported one by one (ReportBatchItemFailures): a stop
that fails (a throttle left after the client's retries included) fails its record alone, which
the queue delivers again after its visibility timeout, then sets aside in its dead-letter queue.
A record that can never succeed (not a cancel event, or an execution of another state machine
than the agent's) is logged as rejected and counts as handled: it is never retried.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from cancel_service.errors import NotAnAgentExecution
from cancel_service.event_models import MessageCancelRequested
from cancel_service.observability import logger, metrics, tracer
from cancel_service.runtime import agent_executions

# A batch whose every stop failed is reported record by record too, not raised: the queue
# retries the records either way, and the function's Errors metric stays for the function's own
# failures (a batch of one throttled stop is common, and says nothing about the code).
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def stop_cause(reason: str, requested_by: str) -> str:
    return f"{reason} requested by {requested_by}"


def _count(name: str) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


def _rejected(why: str, **details: Any) -> None:
    _count("AgentStopsRejected")
    logger.warning(f"agent stop rejected: {why}", extra=details)


def stop_requested(record: SQSRecord) -> None:
    """Stop the execution of one cancel event; raise when the stop failed and may succeed later."""
    try:
        detail = MessageCancelRequested.model_validate_json(record.body).detail
    except ValidationError as error:
        errors = error.errors(include_url=False, include_input=False)
        return _rejected("not a cancel event", sqs_message_id=record.message_id, errors=errors)
    about = {
        "sqs_message_id": record.message_id,
        "message_id": detail.message_id,
        "execution_arn": detail.execution_arn,
    }
    try:
        stopped = agent_executions().stop(
            detail.execution_arn, stop_cause(detail.reason, detail.requested_by)
        )
    except NotAnAgentExecution:
        return _rejected("the execution is not one of the agent's state machine", **about)
    except Exception:
        _count("AgentStopsFailed")
        logger.exception("agent stop failed; the queue delivers it again", extra=about)
        raise
    _count("AgentStopsRequested" if stopped else "AgentStopsNotNeeded")
    logger.info("agent stop handled", extra={**about, "stopped": stopped})
    return None


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=stop_requested, processor=processor, context=context
    )
