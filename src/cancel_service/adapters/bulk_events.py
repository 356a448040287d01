"""EventBridge: a bulk cancel's continuations and its final report, serialized from their models."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cancel_service.adapters.aws import ENTRY_RETRY, EntryRetry, put_events_retrying
from cancel_service.errors import DependencyUnavailable
from cancel_service.event_models import BulkReport, BulkSelection
from cancel_service.observability import tracer

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

# Not "app.messages": the bulk rule takes `Bulk Cancel Requested` from any source but that one,
# so a continuation published under this source reaches the bulk function again. Only events of
# this source may carry a position.
BULK_SOURCE = "app.messages.bulk"
BULK_REQUESTED = "Bulk Cancel Requested"
BULK_COMPLETED = "Bulk Cancel Completed"


class BulkEventPublisher:
    def __init__(self, bus_name: str, client: EventBridgeClient, *, retry: EntryRetry = ENTRY_RETRY) -> None:
        self._bus_name = bus_name
        self._client = client
        self._retry = retry

    @tracer.capture_method
    def publish_continuation(self, continuation: BulkSelection) -> None:
        """Publish a bulk's next link; raise DependencyUnavailable unless EventBridge accepted it."""
        self._put(BULK_REQUESTED, continuation.model_dump(by_alias=True, exclude_none=True))

    @tracer.capture_method
    def publish_report(self, report: BulkReport) -> None:
        """Publish how a bulk ended; raise DependencyUnavailable unless EventBridge accepted it."""
        self._put(BULK_COMPLETED, report.model_dump(by_alias=True, exclude_none=True))

    def _put(self, detail_type: str, detail: Mapping[str, Any]) -> None:
        """One event; an entry EventBridge refused is put again (see EntryRetry)."""
        entry: PutEventsRequestEntryTypeDef = {
            "EventBusName": self._bus_name,
            "Source": BULK_SOURCE,
            "DetailType": detail_type,
            "Detail": json.dumps(detail, separators=(",", ":")),
        }
        outcome = put_events_retrying(self._client, [entry], self._retry)
        if outcome.call_error is not None:
            raise DependencyUnavailable("eventbridge") from outcome.call_error  # botocore retried the call
        if outcome.refused:
            raise DependencyUnavailable("eventbridge")
