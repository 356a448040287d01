"""The service's queues as `status` and `redrive` see them, whatever lanes the template has.

A queue with a redrive policy is a lane: a consumer drains it and sets aside, in its dead-letter
queue, what failed on every attempt. Every other queue holds dead letters: a lane's dead-letter
queue, EventBridge's undelivered events, a function's failed events. The queues are those the
stack names in its outputs (`...QueueUrl`), or those the operator names, and every lane's
dead-letter queue (read from its redrive policy, listed or not).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from cancel_service_cli.errors import CommandError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from cancel_service_cli.stack import Stack

QUEUE_URL_OUTPUT_SUFFIX = "QueueUrl"
# What a queue holds and where it goes, in one GetQueueAttributes call.
_ATTRIBUTES = [
    "QueueArn",
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "RedrivePolicy",
]


@dataclass(frozen=True, slots=True)
class Queue:
    """One queue's counts (SQS's approximate ones) and, for a lane, its dead-letter queue."""

    name: str
    url: str
    arn: str
    visible: int
    in_flight: int
    delayed: int
    dead_letter_arn: str | None

    @property
    def is_lane(self) -> bool:
        return self.dead_letter_arn is not None

    @property
    def messages(self) -> int:
        """Every message not yet deleted: waiting, being handled, or delayed."""
        return self.visible + self.in_flight + self.delayed


def queue_url(sqs: SQSClient, name_or_url: str) -> str:
    if name_or_url.startswith(("https://", "http://")):
        return name_or_url
    try:
        return sqs.get_queue_url(QueueName=name_or_url)["QueueUrl"]
    except ClientError as error:
        raise CommandError(f"queue {name_or_url}: {error.response['Error'].get('Message', error)}") from None


def url_of_arn(sqs: SQSClient, arn: str) -> str:
    *_, account, name = arn.split(":")
    return sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]


def read_queue(sqs: SQSClient, url: str) -> Queue:
    try:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=_ATTRIBUTES)["Attributes"]  # type: ignore[arg-type]
    except ClientError as error:
        raise CommandError(f"queue {url}: {error.response['Error'].get('Message', error)}") from None
    redrive = json.loads(attributes["RedrivePolicy"]) if attributes.get("RedrivePolicy") else {}
    arn = attributes["QueueArn"]
    return Queue(
        name=arn.rsplit(":", 1)[-1],
        url=url,
        arn=arn,
        visible=int(attributes.get("ApproximateNumberOfMessages", 0)),
        in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
        delayed=int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
        dead_letter_arn=redrive.get("deadLetterTargetArn"),
    )


def stack_queue_urls(stack: Stack) -> list[str]:
    """The queues the stack names in its outputs, in the outputs' order."""
    return [url for key, url in stack.outputs.items() if key.endswith(QUEUE_URL_OUTPUT_SUFFIX)]


def read_queues(sqs: SQSClient, urls: list[str]) -> list[Queue]:
    """These queues and every lane's dead-letter queue, each once."""
    queues = [read_queue(sqs, url) for url in dict.fromkeys(urls)]
    known = {queue.arn for queue in queues}
    for lane in [queue for queue in queues if queue.dead_letter_arn]:
        assert lane.dead_letter_arn is not None
        if lane.dead_letter_arn not in known:
            queues.append(read_queue(sqs, url_of_arn(sqs, lane.dead_letter_arn)))
            known.add(lane.dead_letter_arn)
    return queues


def lanes_of(queues: list[Queue], dead_letters: Queue) -> list[Queue]:
    """The lanes that set their failures aside in `dead_letters`."""
    return [queue for queue in queues if queue.dead_letter_arn == dead_letters.arn]
