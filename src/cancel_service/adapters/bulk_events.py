"""EventBridge: a bulk cancel's continuations and its final report."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from cancel_service.errors import DependencyUnavailable
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

    @tracer.capture_method
    def publish_continuation(self, detail: Mapping[str, Any]) -> None:
        """Publish the rest of a bulk; raise DependencyUnavailable unless EventBridge accepted it."""
        self._put(BULK_REQUESTED, detail)

    @tracer.capture_method
    def publish_report(self, detail: Mapping[str, Any]) -> None:
        """Publish how a bulk ended; raise DependencyUnavailable unless EventBridge accepted it."""
        self._put(BULK_COMPLETED, detail)

    def _put(self, detail_type: str, detail: Mapping[str, Any]) -> None:
        """One event; an entry EventBridge refused (throttled, internal failure) is put again,
        with jittered backoff: it was not accepted, so this cannot make a second one."""
        entry: PutEventsRequestEntryTypeDef = {
            "EventBusName": self._bus_name,
            "Source": BULK_SOURCE,
            "DetailType": detail_type,
            "Detail": json.dumps(detail, separators=(",", ":")),
        }
        for attempt in range(self._attempts):
            if attempt:
                self._sleep(self._base_delay * 2 ** (attempt - 1) * (1 + random.random()))  # noqa: S311
            try:
                response = self._client.put_events(Entries=[entry])
            except (ClientError, BotoCoreError) as error:
                raise DependencyUnavailable("eventbridge") from error  # botocore retried the call
            if not response.get("FailedEntryCount"):
                return
        raise DependencyUnavailable("eventbridge")
