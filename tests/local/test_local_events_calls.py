"""The local stack's EventBridge (devstack.events_calls) delivers what moto's own does, parsing
each JSONPath of a target's input once rather than once per event."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import jsonpath_ng.ext
import pytest
from jsonpath_ng.ext import parser
from moto import mock_aws
from moto.events.utils import EventTemplateParser

from devstack.delivery import EVENTBRIDGE_ENVELOPE
from devstack.events_calls import parse_each_path_once
from support.constants import ACCOUNT, REGION

EVENTS = 5


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    monkeypatch.setattr(jsonpath_ng.ext, "parse", parser.parse)  # as it comes, and so after the test
    with mock_aws():
        yield boto3.client("events", region_name=REGION), boto3.client("sqs", region_name=REGION)


def deliveries(events: Any, sqs: Any) -> list[list[dict[str, Any]]]:
    """What a transformed target and a plain target receive of EVENTS events: per target, the
    bodies (the ids and times, which differ per delivery, left out)."""
    urls = []
    for name, extra in (("envelope", {"InputTransformer": EVENTBRIDGE_ENVELOPE}), ("plain", {})):
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name=name, EventPattern=json.dumps({"source": ["app.messages"]}))
        events.put_targets(Rule=name, Targets=[{"Id": name, "Arn": arn, **extra}])
        urls.append(url)
    for index in range(EVENTS):
        events.put_events(
            Entries=[
                {
                    "Source": "app.messages",
                    "DetailType": "Message Cancel Requested",
                    "Detail": json.dumps({"messageId": f"m{index}", "requestedBy": "user_1"}),
                }
            ]
        )
    received = []
    for url in urls:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        received.append(
            sorted(
                (
                    {k: v for k, v in json.loads(m["Body"]).items() if k not in ("id", "time")}
                    for m in messages
                ),
                key=lambda body: body["detail"]["messageId"],
            )
        )
    return received


def test_targets_receive_what_moto_delivers_itself(aws: tuple[Any, Any]) -> None:
    events, sqs = aws
    as_moto_delivers = deliveries(events, sqs)
    for queue in ("envelope", "plain"):
        sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=queue)["QueueUrl"])
        events.remove_targets(Rule=queue, Ids=[queue])
        events.delete_rule(Name=queue)

    parse_each_path_once()

    assert deliveries(events, sqs) == as_moto_delivers
    assert [len(bodies) for bodies in as_moto_delivers] == [EVENTS, EVENTS]
    envelope, plain = as_moto_delivers
    assert envelope[0]["account"] == ACCOUNT
    assert envelope[0]["detail"] == plain[0]["detail"] == {"messageId": "m0", "requestedBy": "user_1"}


def test_each_path_is_parsed_once_whatever_the_number_of_events(aws: tuple[Any, Any]) -> None:
    events, sqs = aws
    parse_each_path_once()
    parse_each_path_once()  # a second stack in the same process keeps the one cache

    deliveries(events, sqs)

    # The envelope's paths, and moto's own default ones for the plain target.
    envelope = list(EVENTBRIDGE_ENVELOPE["InputPathsMap"].values())
    default = list(EventTemplateParser.DEFAULT_EVENT_INPUT_PATHS_MAP.values())
    cache = jsonpath_ng.ext.parse.cache_info()  # type: ignore[attr-defined]
    assert cache.misses == len(set(envelope) | set(default))
    assert cache.hits + cache.misses == EVENTS * (len(envelope) + len(default))
