"""EventBridge: the continuations of a bulk cancel that did not fit in one invocation."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from cancel_service.errors import DependencyUnavailable
from cancel_service.observability import tracer

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

# Not "app.messages": the bulk rule takes `Bulk Cancel Requested` from any source but that one,
# so a continuation published under this source reaches the bulk function again. Only events of
# this source may carry a position.
CONTINUATION_SOURCE = "app.messages.bulk"
BULK_DETAIL_TYPE = "Bulk Cancel Requested"


class BulkContinuationPublisher:
    def __init__(self, bus_name: str, client: EventBridgeClient) -> None:
        self._bus_name = bus_name
        self._client = client

    @tracer.capture_method
    def publish(self, details: Sequence[Mapping[str, Any]]) -> None:
        """Publish the rest of a bulk; raise DependencyUnavailable unless EventBridge accepted all.

        One entry per call: each may be close to the entry size limit, and PutEvents also limits
        the size of the whole request."""
        for detail in details:
            try:
                response = self._client.put_events(
                    Entries=[
                        {
                            "EventBusName": self._bus_name,
                            "Source": CONTINUATION_SOURCE,
                            "DetailType": BULK_DETAIL_TYPE,
                            "Detail": json.dumps(detail, separators=(",", ":")),
                        }
                    ]
                )
            except (ClientError, BotoCoreError) as error:
                raise DependencyUnavailable("eventbridge") from error
            if response.get("FailedEntryCount"):
                raise DependencyUnavailable("eventbridge")
