"""The template's two stop rules partition the cancel events: every `Message Cancel Requested` with
an executionArn goes to exactly one lane (a Clerk user's Stop to the user lane, anything else to
the bulk lane), judged by EventBridge's matching (moto's implementation of it)."""

from __future__ import annotations

import copy
import random
import string
from typing import Any

import pytest

from support.events import eventbridge_event, matches

LANES = ("UserStopRequestsRule", "BulkStopRequestsRule")


class _Absent:
    """No `requestedBy` in the event at all."""

    def __repr__(self) -> str:
        return "absent"


ABSENT = _Absent()

REQUESTERS: list[Any] = [
    "user_2demoOwner0000000000000",
    "user_",
    "system:bulk",
    "system:sweep",
    "system:anything-else",
    "",
    "User_2abc",
    "USER_2abc",
    "user-2abc",
    "user",
    " user_2abc",
    "org_2team",
    "sess_2abc",
    "arn:aws:iam::123456789012:user/user_2abc",
    None,
    42,
    True,
    {"id": "user_2abc"},
    ABSENT,
]


def random_requesters(count: int) -> list[str]:
    chooser = random.Random(16)  # reproducible test data
    alphabet = string.ascii_letters + string.digits + "_:-. "
    prefixes = ["", "user_", "system:", "u", "us", "use", "user"]
    return [
        chooser.choice(prefixes) + "".join(chooser.choices(alphabet, k=chooser.randint(0, 12)))
        for _ in range(count)
    ]


def cancel_event(requested_by: Any, *, with_execution: bool = True) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "messageId": "k58xyz789ghi012",
        "projectId": "k57abc123def456",
        "conversationId": "conv_a",
        "reason": "user_request",
        "requestedAt": "2026-11-24T12:00:00.000Z",
        "requestId": "req-1",
    }
    if with_execution:
        detail["executionArn"] = "arn:aws:states:us-east-1:123456789012:execution:agent:k58xyz789ghi012"
    if requested_by is not ABSENT:
        detail["requestedBy"] = requested_by
    return eventbridge_event("Message Cancel Requested", detail, source="app.messages")


def lanes_of(template: dict[str, Any], event: dict[str, Any]) -> list[str]:
    return [
        rule for rule in LANES if matches(template["Resources"][rule]["Properties"]["EventPattern"], event)
    ]


@pytest.mark.parametrize("requested_by", REQUESTERS + random_requesters(200), ids=repr)
def test_every_cancel_event_with_an_execution_goes_to_exactly_one_lane(template, requested_by):
    lanes = lanes_of(template, cancel_event(requested_by))

    is_user = isinstance(requested_by, str) and requested_by.startswith("user_")
    assert lanes == (["UserStopRequestsRule"] if is_user else ["BulkStopRequestsRule"])


@pytest.mark.parametrize("requested_by", ["user_2abc", "system:bulk", ABSENT], ids=repr)
def test_no_lane_takes_an_event_without_an_execution_or_from_elsewhere(template, requested_by):
    assert lanes_of(template, cancel_event(requested_by, with_execution=False)) == []
    for source, detail_type in (("app.messages.bulk", None), ("someone.else", None), (None, "Other")):
        event = copy.deepcopy(cancel_event(requested_by))
        event["source"] = source or event["source"]
        event["detail-type"] = detail_type or event["detail-type"]
        assert lanes_of(template, event) == []
