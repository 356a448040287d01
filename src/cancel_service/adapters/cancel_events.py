"""EventBridge: one `Message Cancel Requested` event per message, in batches of 10."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cancel_service.adapters.aws import ENTRY_RETRY, EntryRetry, put_events_retrying
from cancel_service.models import CancelRequest, ProcessingMessage, PublishedBatch
from cancel_service.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef, PutEventsResultEntryTypeDef

SOURCE = "app.messages"
DETAIL_TYPE = "Message Cancel Requested"
MAX_ENTRIES_PER_CALL = 10  # PutEvents' own limit


def cancel_event_detail(message: ProcessingMessage, request: CancelRequest) -> dict[str, str]:
    detail = {
        "messageId": message.id,
        "projectId": message.project_id,
        "conversationId": message.conversation_id,
        "requestedBy": request.requested_by,
        "reason": request.reason,
        "requestedAt": request.requested_at,
        "requestId": request.request_id,
    }
    if message.execution_arn:
        detail["executionArn"] = message.execution_arn
    return detail


class CancelEventPublisher:
    """Publishes cancel events and reports, per message, whether EventBridge accepted it.

    botocore retries a failed call; entries that fail inside a successful call (throttled,
    internal failure) are retried here as `retry` says (jittered backoff, a bounded number of calls).
    """

    max_batch = MAX_ENTRIES_PER_CALL

    def __init__(self, bus_name: str, client: EventBridgeClient, *, retry: EntryRetry = ENTRY_RETRY) -> None:
        self._bus_name = bus_name
        self._client = client
        self._retry = retry

    def publish_batch(self, batch: Sequence[ProcessingMessage], request: CancelRequest) -> PublishedBatch:
        """Publish up to MAX_ENTRIES_PER_CALL events; entries that failed are retried, then reported."""

        def refused(index: int, result: PutEventsResultEntryTypeDef, attempt: int) -> None:
            logger.warning(
                "cancel event rejected",
                extra={
                    "message_id": batch[index].id,
                    "error_code": result.get("ErrorCode"),
                    "attempt": attempt,
                },
            )

        outcome = put_events_retrying(
            self._client, [self._entry(message, request) for message in batch], self._retry, refused
        )
        if outcome.call_error is not None:
            # botocore has already retried the call itself: give up on this batch.
            logger.warning(
                "PutEvents call failed",
                extra={"error": type(outcome.call_error).__name__, "attempt": outcome.failed_attempt},
            )
        return PublishedBatch(
            tuple(batch[index] for index in outcome.accepted),
            tuple(batch[index] for index in outcome.refused),
        )

    def _entry(self, message: ProcessingMessage, request: CancelRequest) -> PutEventsRequestEntryTypeDef:
        return {
            "EventBusName": self._bus_name,
            "Source": SOURCE,
            "DetailType": DETAIL_TYPE,
            "Detail": json.dumps(cancel_event_detail(message, request), separators=(",", ":")),
        }
