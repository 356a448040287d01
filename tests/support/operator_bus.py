"""An operator's AWS environment for `cancel-service bulk` (moto in this process): the bus with a
queue that receives every bulk request, and a stand-in for the bulk function that answers a
request with continuations and a report."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Self

import boto3

from cancel_service.models import utc_timestamp
from support.constants import BUS_NAME, PROJECT

OPERATOR_RULE = "operator-requests"
WATCH_PREFIX = "bulk-watch-"


@dataclass
class Bus:
    """The test's bus in moto, with a queue that receives every bulk request an operator puts on it."""

    events: Any
    sqs: Any
    requests_url: str

    def requests(self, wait_seconds: int = 0) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(
            QueueUrl=self.requests_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
        ).get("Messages", [])
        for message in messages:
            self.sqs.delete_message(QueueUrl=self.requests_url, ReceiptHandle=message["ReceiptHandle"])
        return [json.loads(message["Body"]) for message in messages]

    def watch_rules(self) -> list[str]:
        rules = self.events.list_rules(EventBusName=BUS_NAME)["Rules"]
        return [rule["Name"] for rule in rules if rule["Name"].startswith(WATCH_PREFIX)]

    def watch_queues(self) -> list[str]:
        urls = self.sqs.list_queues().get("QueueUrls", [])
        return [url for url in urls if f"/{WATCH_PREFIX}" in url]


def progress_detail(bulk_id: str, **totals: int) -> dict[str, Any]:
    """A continuation as the bulk function publishes it: the projects left, the link and the
    position it resumes at, and the running totals."""
    return {
        "projectIds": [PROJECT],
        "bulkId": bulk_id,
        "cursor": {
            "link": totals.get("invocations", 1),
            "startKey": {"id": {"S": "m1"}, "projectId": {"S": PROJECT}, "status": {"S": "processing"}},
            "progress": {"selected": 0, "cancelled": 0, "alreadyFinished": 0, "failed": 0, **totals},
        },
    }


def report_detail(bulk_id: str, outcome: str = "finished", **fields: Any) -> dict[str, Any]:
    """A report of a bulk over PROJECT started now, that took 4.5 s."""
    started = datetime.now(UTC)
    return {
        "bulkId": bulk_id,
        "selector": {"projectIds": [PROJECT], "projectCount": 1},
        "dryRun": False,
        "outcome": outcome,
        "selected": 3,
        "cancelled": 2,
        "alreadyFinished": 1,
        "failed": 0,
        "invocations": 2,
        "startedAt": utc_timestamp(started),
        "finishedAt": utc_timestamp(started + timedelta(seconds=4.5)),
        **fields,
    }


def first_request(requests: Callable[[int], list[dict[str, Any]]], seconds: float) -> dict[str, Any]:
    """The operator's bulk request, once the command has put it; fails the test after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if put := requests(1):
            return put[0]
    raise AssertionError("the command put no bulk request")


class PlayedInAThread:
    """A stand-in that plays its part (`_play`) in a thread of its own while the test's with
    block runs; leaving the block waits for it and raises what it raised."""

    JOIN_SECONDS = 15
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(timeout=self.JOIN_SECONDS)
        assert not self._thread.is_alive()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            self._play()
        except BaseException as error:
            self.error = error

    def _play(self) -> None:
        raise NotImplementedError


@dataclass
class BulkFunctionStandIn(PlayedInAThread):
    """Plays the bulk function from a thread: waits for the operator's request on the bus, notes
    the temporary rule and queue policy the command made, then publishes continuations and the
    report (or, with `interrupt`, sets `ctrl_c` instead: the test turns it into the operator's
    Ctrl-C in the command's main thread)."""

    bus: Bus
    outcome: str = "finished"
    interrupt: bool = False
    # Reports of other bulks that had the same bulkId, published before this bulk's own.
    others_reports: list[dict[str, Any]] = field(default_factory=list)
    request: dict[str, Any] | None = None
    watch_rule: dict[str, Any] = field(default_factory=dict)
    watch_policy: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    ctrl_c: threading.Event = field(default_factory=threading.Event)

    def _play(self) -> None:
        self.request = first_request(self.bus.requests, seconds=10)
        events, sqs = boto3.client("events"), boto3.client("sqs")
        (rule_name,) = self.bus.watch_rules()
        self.watch_rule = dict(events.describe_rule(Name=rule_name, EventBusName=BUS_NAME))
        (queue_url,) = self.bus.watch_queues()
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["Policy"])["Attributes"]
        self.watch_policy = json.loads(attributes["Policy"])
        if self.interrupt:
            self.ctrl_c.set()
            return
        bulk_id = self.request["detail"]["bulkId"]
        for other in self.others_reports:
            self._publish("Bulk Cancel Completed", {**report_detail(bulk_id), **other})
        for totals in (
            {"selected": 2, "cancelled": 1, "invocations": 1},
            {"selected": 3, "cancelled": 2, "invocations": 2},
        ):
            self._publish("Bulk Cancel Requested", progress_detail(bulk_id, **totals))
        self.report = report_detail(bulk_id, self.outcome)
        self._publish("Bulk Cancel Completed", self.report)

    @staticmethod
    def _publish(detail_type: str, detail: dict[str, Any]) -> None:
        answer = boto3.client("events").put_events(
            Entries=[
                {
                    "EventBusName": BUS_NAME,
                    "Source": "app.messages.bulk",
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail),
                }
            ]
        )
        assert answer["FailedEntryCount"] == 0
