"""POST /api/messages/cancel against moto and a local JWKS server, with real signed tokens."""

from __future__ import annotations

import json

import pytest

from devstack.apigw import http_api_event
from support.constants import ORG, OTHER_USER, OWNER, PROJECT
from support.http_api import invoke, post_cancel
from support.store import Store

ARN = "arn:aws:states:us-east-1:123456789012:execution:agent:{}"


def seed_conversations(store: Store) -> None:
    """The seed page's scene: processing messages in two conversations, plus messages that must stay."""
    store.put_project()
    store.put_message("k58xyz789ghi012", conversation_id="conv_a", execution_arn=ARN.format("a1"))
    store.put_message("k59abc456def789", conversation_id="conv_b", execution_arn=ARN.format("b1"))
    store.put_message("k60nonearn00001", conversation_id="conv_b")  # not started on an agent yet
    store.put_message("k61done00000001", conversation_id="conv_a", status="completed")
    store.put_message("k62failed000001", conversation_id="conv_b", status="failed")
    store.put_message("k63pending00001", conversation_id="conv_a", status="pending")
    store.put_project("k57otherproject", owner_id=OWNER)
    store.put_message("k64otherproj001", project_id="k57otherproject")


def test_cancels_every_processing_message_of_the_project_across_conversations(store, mint, lambda_context):
    seed_conversations(store)

    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token=mint())

    assert answer.status == 200
    assert answer.body["success"] is True
    assert answer.body["cancelled"] is True
    assert sorted(answer.body["messageIds"]) == ["k58xyz789ghi012", "k59abc456def789", "k60nonearn00001"]
    for message_id in answer.body["messageIds"]:
        item = store.message(message_id)
        assert item["status"] == "cancelled"
        assert item["cancelledBy"] == OWNER
        assert item["cancelReason"] == "user_request"
        assert item["cancelledAt"] == item["updatedAt"]
        assert item["cancelledAt"].endswith("Z")
        assert len(item["cancelledAt"]) == len("2026-11-24T12:00:00.000Z")
    assert store.status("k61done00000001") == "completed"
    assert store.status("k62failed000001") == "failed"
    assert store.status("k63pending00001") == "pending"
    assert store.status("k64otherproj001") == "processing"
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Content-Type"] == "application/json"


def test_publishes_one_cancel_event_per_message_with_the_contract_detail(
    store, mint, lambda_context, log_lines
):
    seed_conversations(store)

    post_cancel(lambda_context, {"projectId": PROJECT}, token=mint())

    events = store.published()
    assert {event["detail-type"] for event in events} == {"Message Cancel Requested"}
    assert {event["source"] for event in events} == {"app.messages"}
    details = {event["detail"]["messageId"]: event["detail"] for event in events}
    assert set(details) == {"k58xyz789ghi012", "k59abc456def789", "k60nonearn00001"}
    first = details["k58xyz789ghi012"]
    assert first == {
        "messageId": "k58xyz789ghi012",
        "projectId": PROJECT,
        "conversationId": "conv_a",
        "executionArn": ARN.format("a1"),
        "requestedBy": OWNER,
        "reason": "user_request",
        "requestedAt": store.message("k58xyz789ghi012")["cancelledAt"],
        "requestId": store.message("k58xyz789ghi012")["cancelRequestId"],
    }
    # One request id for the whole call, and it is API Gateway's id of the request.
    assert {detail["requestId"] for detail in details.values()} == {first["requestId"]}
    assert first["requestId"] == log_lines()[-1]["correlation_id"]
    assert "executionArn" not in details["k60nonearn00001"]


def test_second_call_has_nothing_left_to_cancel(store, mint, lambda_context):
    seed_conversations(store)
    post_cancel(lambda_context, {"projectId": PROJECT}, token=mint())
    store.published()

    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token=mint())

    assert answer.status == 200
    assert answer.body == {"success": True, "cancelled": False}
    assert store.published() == []


def test_member_of_the_projects_organization_may_cancel(store, mint, lambda_context):
    store.put_project(owner_id=OWNER, org_id=ORG)
    store.put_message("m1")

    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token=mint(OTHER_USER, org=ORG))

    assert answer.status == 200
    assert answer.body["messageIds"] == ["m1"]
    assert store.message("m1")["cancelledBy"] == OTHER_USER


def test_clerk_v1_org_claim_is_understood(store, mint, lambda_context):
    store.put_project(owner_id=OWNER, org_id=ORG)
    store.put_message("m1")

    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token=mint(OTHER_USER, v=None, org_id=ORG))

    assert answer.status == 200
    assert answer.body["messageIds"] == ["m1"]


def test_member_of_another_organization_gets_the_same_404_as_a_missing_project(store, mint, lambda_context):
    store.put_project(owner_id=OWNER, org_id=ORG)
    store.put_message("m1")

    foreign = post_cancel(lambda_context, {"projectId": PROJECT}, token=mint(OTHER_USER, org="org_2other"))
    stranger = post_cancel(lambda_context, {"projectId": PROJECT}, token=mint(OTHER_USER))
    missing = post_cancel(lambda_context, {"projectId": "k57doesnotexist"}, token=mint(OTHER_USER))

    assert foreign.status == stranger.status == missing.status == 404
    assert foreign.body == stranger.body == missing.body
    assert missing.body["error"]["code"] == "project_not_found"
    assert store.status("m1") == "processing"
    assert store.published() == []


@pytest.mark.parametrize(
    ("raw_body", "why"),
    [
        ("{not json", "not JSON"),
        ("[]", "not an object"),
        ('"k57abc123def456"', "a JSON string"),
        ("null", "null"),
        ("", "empty"),
        ("{}", "missing projectId"),
        ('{"projectId": ""}', "empty projectId"),
        ('{"projectId": 42}', "number"),
        ('{"projectId": null}', "null projectId"),
        ('{"projectId": ["k57abc123def456"]}', "array"),
        ('{"projectId": "k57/../../x"}', "path characters"),
        ('{"projectId": "k57abc\\n"}', "trailing newline"),
        (json.dumps({"projectId": "a" * 129}), "too long"),
        ("[" * 5000 + "]" * 5000, "deeply nested"),
    ],
)
def test_bad_bodies_are_400_and_change_nothing(store, mint, lambda_context, raw_body, why):
    store.put_project()
    store.put_message("m1")

    answer = post_cancel(lambda_context, token=mint(), raw_body=raw_body)

    assert answer.status == 400, why
    assert answer.body["success"] is False
    assert answer.body["error"]["code"] == "invalid_request"
    assert store.status("m1") == "processing"


def test_unknown_fields_are_ignored_and_128_characters_are_allowed(store, mint, lambda_context):
    long_id = "A-b_9" * 25 + "xyz"
    store.put_project(long_id)
    store.put_message("m1", project_id=long_id)

    answer = post_cancel(lambda_context, {"projectId": long_id, "reason": "ignored", "x": [1]}, token=mint())

    assert answer.status == 200
    assert answer.body["messageIds"] == ["m1"]


def test_body_over_16_kib_is_413(store, mint, lambda_context):
    store.put_project()
    body = json.dumps({"projectId": PROJECT, "padding": "x" * 16 * 1024})

    answer = post_cancel(lambda_context, token=mint(), raw_body=body)

    assert answer.status == 413
    assert answer.body["error"]["code"] == "payload_too_large"


def test_base64_encoded_body_is_decoded(store, mint, lambda_context):
    store.put_project()
    store.put_message("m1")

    answer = post_cancel(lambda_context, token=mint(), raw_body=json.dumps({"projectId": PROJECT}).encode())

    assert answer.status == 200
    assert answer.body["messageIds"] == ["m1"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_body_not_declared_as_json_is_415(store, mint, lambda_context, content_type):
    store.put_project()

    answer = post_cancel(
        lambda_context, {"projectId": PROJECT}, token=mint(), headers={"content-type": content_type}
    )

    assert answer.status == 415
    assert answer.body["error"]["code"] == "unsupported_media_type"


def test_json_with_charset_is_accepted(store, mint, lambda_context):
    store.put_project()

    answer = post_cancel(
        lambda_context,
        {"projectId": PROJECT},
        token=mint(),
        headers={"content-type": "application/json; charset=utf-8"},
    )

    assert answer.status == 200


@pytest.mark.usefixtures("store")
def test_unknown_route_answers_in_the_envelope(lambda_context):
    answer = invoke(http_api_event("GET", "/api/other"), lambda_context)

    assert answer.status == 404
    assert answer.body["success"] is False
    assert answer.headers["Cache-Control"] == "no-store"


def test_missing_configuration_is_named_in_the_log_not_in_the_answer(
    store, mint, lambda_context, monkeypatch, log_lines
):
    monkeypatch.delenv("MESSAGES_TABLE")
    store.put_project()

    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token=mint())

    assert answer.status == 500
    assert answer.body == {
        "success": False,
        "error": {"code": "internal_error", "message": "Something went wrong on our side."},
    }
    failure = next(log for log in log_lines() if log["level"] == "ERROR")
    assert "MESSAGES_TABLE" in failure["exception"]


def test_cancel_counts_are_published_as_metrics(store, mint, lambda_context, capfd):
    seed_conversations(store)

    post_cancel(lambda_context, {"projectId": PROJECT}, token=mint())

    blobs = [json.loads(line) for line in capfd.readouterr().out.splitlines() if '"_aws"' in line]
    counts = next(blob for blob in blobs if "CancelRequests" in blob)
    assert counts["CancelRequests"] == [1.0]
    assert counts["MessagesCancelled"] == [3.0]
