"""The local stack's SQS calls (devstack.sqs_calls) answer as moto's own: the same messages
received, hidden, delayed, expired and deleted, by the same receipt handles. Each test runs on
moto as it comes and on moto with the local stack's paths, behind many queued messages."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.sqs.models import sqs_backends

from devstack.sqs_calls import REPLACED
from support.constants import ACCOUNT, REGION

# Messages that wait behind the ones a test looks at: moto as it comes takes seconds a receive
# with a few hundred queued on a loaded machine, so a few dozen.
QUEUED = 40
RECEIVES = QUEUED // 10 + 2  # enough receives of ten to take every message, and see none left

# moto's own paths, as collected: a local stack started in this process before the test has
# replaced them for the process's life.
MOTO_OWN = [(owner, name, owner.__dict__[name]) for owner, name, _ in REPLACED]


@pytest.fixture(params=["moto", "local stack"])
def sqs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for owner, name, path in MOTO_OWN if request.param == "moto" else REPLACED:
        monkeypatch.setattr(owner, name, path)
    with mock_aws():
        yield boto3.client("sqs", region_name=REGION)


def queue_with(sqs: Any, name: str, count: int, **attributes: str) -> str:
    url: str = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    for first in range(0, count, 10):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(index), "MessageBody": f"m{index}"}
                for index in range(first, min(first + 10, count))
            ],
        )
    return url


def receive(sqs: Any, url: str, count: int = 10) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=count).get(
        "Messages", []
    )
    return messages


def bodies(messages: list[dict[str, Any]]) -> list[str]:
    return [message["Body"] for message in messages]


def queued(sqs: Any, url: str) -> tuple[int, int, int]:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        int(attributes["ApproximateNumberOfMessagesDelayed"]),
    )


def test_a_received_message_is_hidden_until_its_visibility_ends_or_is_changed(sqs):
    url = queue_with(sqs, "work", QUEUED, VisibilityTimeout="30")

    first, second = receive(sqs, url), receive(sqs, url)

    assert bodies(first) == [f"m{index}" for index in range(10)]  # oldest first, as moto does
    assert bodies(second) == [f"m{index}" for index in range(10, 20)]  # the first ten are hidden
    assert queued(sqs, url) == (QUEUED - 20, 20, 0)
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=first[3]["ReceiptHandle"], VisibilityTimeout=0)
    [again] = receive(sqs, url, count=1)
    assert (again["Body"], again["MessageId"]) == ("m3", first[3]["MessageId"])
    assert again["ReceiptHandle"] != first[3]["ReceiptHandle"]  # each receive, a new handle


def test_a_delayed_message_is_not_received_while_delayed(sqs):
    url = queue_with(sqs, "work", QUEUED)
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)

    received = [message for _ in range(RECEIVES) for message in receive(sqs, url)]

    assert len(received) == QUEUED
    assert "later" not in bodies(received)
    assert queued(sqs, url) == (0, QUEUED, 1)


def test_a_message_past_the_retention_period_is_not_received(sqs):
    url = queue_with(sqs, "work", 3, MessageRetentionPeriod="60")
    queue = sqs_backends[ACCOUNT][REGION].get_queue("work")
    expired = queue._messages[1]
    # Sent 61 s earlier than it was (moto types the attribute by its initial None).
    expired.sent_timestamp = int(str(expired.sent_timestamp)) - 61_000  # type: ignore[assignment]

    assert bodies(receive(sqs, url)) == ["m0"]  # moto stops at the expired one


def test_deletes_by_receipt_handle(sqs):
    url = queue_with(sqs, "work", QUEUED)
    [message] = receive(sqs, url, count=1)
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    [again] = receive(sqs, url, count=1)
    [last] = [m for _ in range(RECEIVES) for m in receive(sqs, url) if m["Body"] == f"m{QUEUED - 1}"]

    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])  # its older handle
    sqs.delete_message(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"])  # deleted already: accepted
    sqs.delete_message(QueueUrl=url, ReceiptHandle=last["ReceiptHandle"])  # the last in the queue
    with pytest.raises(ClientError) as refused:
        sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-handle-sqs-ever-gave")

    assert refused.value.response["Error"]["Code"] == "ReceiptHandleIsInvalid"
    assert queued(sqs, url) == (0, QUEUED - 2, 0)  # the two deleted are gone, the others in flight
