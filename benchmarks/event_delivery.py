"""What the cloud does between the functions of `bulk_scale.py`, done in this process: the
events EventBridge accepted (kept from the PutEvents calls, to be delivered as events), the
instants of the StopExecution calls, and the stop queue's event source mapping (batches of 10,
records reported failed delivered again, those failing too often counted as dead letters)."""

from __future__ import annotations

import json
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import boto3
from lambda_context import ACCOUNT, REGION

SQS_BATCH = 10
MAX_RECEIVE_COUNT = 5  # a record failed this often would be in the dead-letter queue


class Recorder:
    """Wraps the clients the functions build: keeps every PutEvents entry EventBridge accepted
    and the instant of every StopExecution call."""

    def __init__(self) -> None:
        self.accepted: list[dict[str, Any]] = []
        self.stops: list[tuple[float, str]] = []

    @contextmanager
    def installed(self) -> Iterator[None]:
        real_client: Callable[..., Any] = boto3.client

        def client(service: str, *args: Any, **kwargs: Any) -> Any:
            created = real_client(service, *args, **kwargs)
            events = created.meta.events
            if service == "events":
                events.register("before-parameter-build.events.PutEvents", self._remember_entries)
                events.register("after-call.events.PutEvents", self._keep_accepted)
            if service == "stepfunctions":
                events.register("before-parameter-build.sfn.StopExecution", self._stop)
            return created

        with mock.patch.object(boto3, "client", client):
            yield

    # botocore's event hooks: botocore passes every argument by keyword, more than each one uses.
    @staticmethod
    def _remember_entries(params: dict[str, Any], context: dict[str, Any], **_kwargs: Any) -> None:
        context["entries"] = list(params["Entries"])

    def _keep_accepted(self, parsed: dict[str, Any], context: dict[str, Any], **_kwargs: Any) -> None:
        for entry, result in zip(context["entries"], parsed.get("Entries", []), strict=True):
            if result.get("EventId"):
                self.accepted.append(entry)

    def _stop(self, params: dict[str, Any], **_kwargs: Any) -> None:
        self.stops.append((time.monotonic(), params["executionArn"]))

    def take(self, detail_type: str) -> list[dict[str, Any]]:
        """The accepted events of this detail type since the last take, as EventBridge delivers them."""
        taken = [entry for entry in self.accepted if entry["DetailType"] == detail_type]
        self.accepted = [entry for entry in self.accepted if entry["DetailType"] != detail_type]
        return [
            {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": entry["DetailType"],
                "source": entry["Source"],
                "account": ACCOUNT,
                "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "region": REGION,
                "resources": [],
                "detail": json.loads(entry["Detail"]),
            }
            for entry in taken
        ]


def sqs_records(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "messageId": str(uuid.uuid4()),
            "receiptHandle": "handle",
            "body": json.dumps(event),
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:stop-requests",
            "awsRegion": REGION,
        }
        for event in events
    ]


@dataclass
class StopQueue:
    """The stop queue and its event source mapping: batches of 10, failed records again."""

    pending: deque[tuple[dict[str, Any], int]] = field(default_factory=deque)
    dead_letters: int = 0
    invocations: int = 0

    def add(self, events: list[dict[str, Any]]) -> None:
        self.pending.extend((event, 0) for event in events)

    def drain(self, handler: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Deliver every pending record to `handler` (the stopper, given its event alone)."""
        while self.pending:
            batch = [self.pending.popleft() for _ in range(min(SQS_BATCH, len(self.pending)))]
            records = sqs_records([event for event, _ in batch])
            self.invocations += 1
            answer = handler({"Records": records})
            failed = {item["itemIdentifier"] for item in answer.get("batchItemFailures", [])}
            for record, (event, receives) in zip(records, batch, strict=True):
                if record["messageId"] not in failed:
                    continue
                if receives + 1 >= MAX_RECEIVE_COUNT:
                    self.dead_letters += 1
                else:
                    self.pending.append((event, receives + 1))
