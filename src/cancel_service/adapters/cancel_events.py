"""EventBridge: one `Message Cancel Requested` event per message, in batches of 10."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from cancel_service.models import CancelRequest, ProcessingMessage
from cancel_service.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

SOURCE = "app.messages"
DETAIL_TYPE = "Message Cancel Requested"
MAX_ENTRIES_PER_CALL = 10  # PutEvents' own limit


@dataclass(frozen=True, slots=True)
class PublishedBatch:
    """Which messages of one batch EventBridge accepted, and which it did not (after retries)."""

    accepted: tuple[ProcessingMessage, ...]
    rejected: tuple[ProcessingMessage, ...]


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
    internal failure) are retried here, with jittered backoff, up to `attempts` times.
    """

    def __init__(
        self,
        bus_name: str,
        client: EventBridgeClient,
        *,
        attempts: int = 3,
        base_delay: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._bus_name = bus_name
        self._client = client
        self._attempts = attempts
        self._base_delay = base_delay
        self._sleep = sleep

    def publish_batch(self, batch: Sequence[ProcessingMessage], request: CancelRequest) -> PublishedBatch:
        """Publish up to MAX_ENTRIES_PER_CALL events; entries that failed are retried, then reported."""
        accepted: list[ProcessingMessage] = []
        pending = list(batch)
        for attempt in range(self._attempts):
            if attempt:
                self._sleep(self._base_delay * 2 ** (attempt - 1) * (1 + random.random()))  # noqa: S311
            try:
                response = self._client.put_events(Entries=[self._entry(m, request) for m in pending])
            except (ClientError, BotoCoreError) as error:
                # botocore has already retried the call itself: give up on this batch.
                logger.warning(
                    "PutEvents call failed", extra={"error": type(error).__name__, "attempt": attempt}
                )
                break
            still_pending = []
            for message, result in zip(pending, response["Entries"], strict=True):
                if result.get("EventId") and not result.get("ErrorCode"):
                    accepted.append(message)
                else:
                    still_pending.append(message)
                    logger.warning(
                        "cancel event rejected",
                        extra={
                            "message_id": message.id,
                            "error_code": result.get("ErrorCode"),
                            "attempt": attempt,
                        },
                    )
            pending = still_pending
            if not pending:
                break
        return PublishedBatch(tuple(accepted), tuple(pending))

    def _entry(self, message: ProcessingMessage, request: CancelRequest) -> PutEventsRequestEntryTypeDef:
        return {
            "EventBusName": self._bus_name,
            "Source": SOURCE,
            "DetailType": DETAIL_TYPE,
            "Detail": json.dumps(cancel_event_detail(message, request), separators=(",", ":")),
        }
