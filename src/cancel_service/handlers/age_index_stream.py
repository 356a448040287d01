"""The messages table's stream: keeps the age index (processing messages by last update).

A record whose message is processing after it puts the message's entry unless it has one; a
record whose message was processing before and is not after (or was deleted) removes it. Records
of one message come in order, and each record's outcome depends only on its own images, so
applying a batch again from any record on (Lambda's retry after a reported failure) ends where
applying it once does. A processing message with no `updatedAt` has no age and is not indexed,
as the status index left it out before (nor one whose id is too long to be part of a key).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from cancel_service.models import PROCESSING
from cancel_service.observability import logger, metrics, tracer
from cancel_service.runtime import age_index

# A failed write fails its record: Lambda checkpoints at the first one reported and delivers the
# batch again from there. The function's Errors metric stays for the function's own failures.
processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)


def message_changed(record: DynamoDBRecord) -> None:
    change = record.dynamodb
    if change is None:
        return
    message_id = change.keys.get("id")
    new, old = change.new_image, change.old_image
    if not isinstance(message_id, str):
        return
    if new.get("status") == PROCESSING:
        updated_at = new.get("updatedAt")
        if isinstance(updated_at, str) and age_index().processing(message_id, updated_at):
            return
        metrics.add_metric(name="AgeIndexUnreadableMessages", unit=MetricUnit.Count, value=1)
        logger.warning(
            "processing message without a usable updatedAt: not indexed",
            extra={"message_id": message_id[:128]},
        )
    if old.get("status") == PROCESSING:
        age_index().not_processing(message_id)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=message_changed, processor=processor, context=context
    )
