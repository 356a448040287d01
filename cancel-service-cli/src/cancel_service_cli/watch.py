"""`cancel-service bulk --wait`'s temporary SQS queue and EventBridge rule, which receive one
bulk's continuations (its running totals) and its report; deleted however the command ends."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from cancel_service.adapters.bulk_events import BULK_SOURCE
from cancel_service_cli.arguments import PROG
from cancel_service_cli.errors import CommandError
from cancel_service_cli.request import OPERATOR_SOURCE, WATCH_RULE_PREFIX

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sqs import SQSClient

# Put by the command itself to learn that its new rule delivers (see ReportWatch.wait_until_live).
PROBE_DETAIL_TYPE = "Bulk Cancel Watch Probe"
# EventBridge applies a new rule within seconds; a rule silent for this long is not working.
RULE_LIVE_TIMEOUT_SECONDS = 30.0
PROBE_EVERY_SECONDS = 2


class ReportWatch:
    """A temporary SQS queue and EventBridge rule that receive one bulk's events: its
    continuations and its report (source app.messages.bulk, this bulkId), and this command's own
    probes. Use as a context manager: whatever was created is deleted on the way out."""

    def __init__(
        self, events: EventBridgeClient, sqs: SQSClient, bus: str, bulk_id: str, log: TextIO
    ) -> None:
        self._events, self._sqs, self._bus, self._bulk_id, self._log = events, sqs, bus, bulk_id, log
        # A random part first, so that two watches of one bulk never share (or delete) a queue,
        # and the name stays within the 64 characters of a rule name.
        self.name = f"{WATCH_RULE_PREFIX}{secrets.token_hex(4)}-{bulk_id}"[:64]
        self._queue_url: str | None = None
        # What was created so far, each with what it is and the call that deletes it.
        self._created: list[tuple[str, Callable[[], object]]] = []

    def __enter__(self) -> ReportWatch:
        try:
            self._create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _create(self) -> None:
        queue_url = self._sqs.create_queue(
            QueueName=self.name, Attributes={"MessageRetentionPeriod": "3600"}
        )["QueueUrl"]
        self._queue_url = queue_url
        self._created.append((f"queue {queue_url}", partial(self._sqs.delete_queue, QueueUrl=queue_url)))
        queue_arn = self._sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        pattern = {
            "source": [BULK_SOURCE, OPERATOR_SOURCE],
            "detail": {"bulkId": [self._bulk_id]},
        }
        rule_arn = self._events.put_rule(
            Name=self.name,
            EventBusName=self._bus,
            EventPattern=json.dumps(pattern),
            State="ENABLED",
            Description=f"{PROG} bulk --wait: events of bulk {self._bulk_id} (temporary)",
        )["RuleArn"]
        self._created.append(
            (
                f"rule {self.name} on bus {self._bus}",
                partial(self._events.delete_rule, Name=self.name, EventBusName=self._bus),
            )
        )
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
                }
            ],
        }
        self._sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
        self._events.put_targets(
            Rule=self.name, EventBusName=self._bus, Targets=[{"Id": "watch", "Arn": queue_arn}]
        )
        self._created.append(
            (
                f"target of rule {self.name}",
                partial(self._events.remove_targets, Rule=self.name, EventBusName=self._bus, Ids=["watch"]),
            )
        )

    def close(self) -> None:
        """Delete what was created, the latest first (the target, the rule, the queue); each is
        tried even when another fails, and what could not be deleted is named so that it can be
        deleted by hand."""
        self._queue_url = None
        while self._created:
            what, delete = self._created.pop()
            try:
                delete()
            except (ClientError, BotoCoreError) as error:
                print(f"{PROG}: could not delete the temporary {what}: {error}", file=self._log)

    def receive(self, wait_seconds: int) -> list[dict[str, Any]]:
        """The events delivered so far (waiting up to `wait_seconds` for the first)."""
        assert self._queue_url is not None, "receive() inside the with block only"
        messages = self._sqs.receive_message(
            QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
        ).get("Messages", [])
        if messages:
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                    for index, message in enumerate(messages)
                ],
            )
        return [json.loads(message["Body"]) for message in messages]

    def wait_until_live(self, give_up_at: float) -> bool:
        """Return once the rule delivers (True), or at `give_up_at` (time.monotonic(): the end of
        the command's --timeout) if it has not yet (False). EventBridge may take a moment to apply
        a new rule; a bulk requested before would end unseen when it is short. So the command puts
        probes (its own source, a detail type nothing else consumes) until one arrives. A rule
        silent for RULE_LIVE_TIMEOUT_SECONDS is not working: CommandError."""
        deadline = time.monotonic() + RULE_LIVE_TIMEOUT_SECONDS
        while (now := time.monotonic()) < min(deadline, give_up_at):
            self._events.put_events(
                Entries=[
                    {
                        "EventBusName": self._bus,
                        "Source": OPERATOR_SOURCE,
                        "DetailType": PROBE_DETAIL_TYPE,
                        "Detail": json.dumps({"bulkId": self._bulk_id}),
                    }
                ]
            )
            for _ in range(PROBE_EVERY_SECONDS):
                wait = 1 if min(deadline, give_up_at) - now >= 1 else 0
                if any(event.get("detail-type") == PROBE_DETAIL_TYPE for event in self.receive(wait)):
                    return True
                now = time.monotonic()
        if give_up_at <= deadline:
            return False
        raise CommandError(
            f"the temporary rule {self.name} delivered nothing in {RULE_LIVE_TIMEOUT_SECONDS:.0f} s; "
            "no bulk was requested"
        )
