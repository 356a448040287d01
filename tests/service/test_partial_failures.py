"""Dependencies failing part-way, races with the agent, and the shape of the AWS calls."""

from __future__ import annotations

import json
from typing import Any

import pytest

from support.client_faults import client_error, install
from support.constants import PROJECT
from support.http_api import post_cancel
from support.store import Store


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch):
    return install(monkeypatch)


@pytest.fixture
def scene(store: Store) -> Store:
    store.put_project()
    for message_id in ("m1", "m2", "m3"):
        store.put_message(message_id)
    return store


def reject_entries(
    clients, message_ids: set[str], *, times: int, code: str = "ThrottlingException"
) -> list[int]:
    """PutEvents accepts the call but rejects the entries of `message_ids`, `times` times over."""
    rejections = [0]
    events = clients["events"]

    def put_events(Entries: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
        doomed = [json.loads(entry["Detail"])["messageId"] in message_ids for entry in Entries]
        if rejections[0] >= times or not any(doomed):
            return events.real.put_events(Entries=Entries, **kwargs)
        rejections[0] += 1
        accepted = iter(
            events.real.put_events(Entries=[e for e, d in zip(Entries, doomed, strict=True) if not d])[
                "Entries"
            ]
            if not all(doomed)
            else []
        )
        results = [{"ErrorCode": code, "ErrorMessage": "try again"} if d else next(accepted) for d in doomed]
        return {"FailedEntryCount": sum(doomed), "Entries": results}

    events.intercept["put_events"] = put_events
    return rejections


def published_ids(store: Store) -> list[str]:
    return sorted(event["detail"]["messageId"] for event in store.published())


def test_entries_rejected_once_are_retried_and_all_cancelled(scene, clients, mint, lambda_context):
    post_cancel(lambda_context, {"projectId": "warm-up"}, token=mint())  # builds the clients
    rejections = reject_entries(clients, {"m2"}, times=1)

    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token=mint())

    assert rejections == [1]
    assert answer.status == 200
    assert sorted(answer.body["messageIds"]) == ["m1", "m2", "m3"]
    assert published_ids(scene) == ["m1", "m2", "m3"]


def test_entries_rejected_for_good_leave_their_messages_processing_and_answer_503(
    scene, clients, mint, lambda_context
):
    post_cancel(lambda_context, {"projectId": "warm-up"}, token=mint())
    reject_entries(clients, {"m2"}, times=1_000)

    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token=mint())

    assert answer.status == 503
    assert answer.body["error"]["code"] == "unavailable"
    assert answer.headers["Retry-After"]
    assert [scene.status(m) for m in ("m1", "m2", "m3")] == ["cancelled", "processing", "cancelled"]
    assert published_ids(scene) == ["m1", "m3"]

    clients["events"].intercept.clear()  # EventBridge recovers; the user presses Stop again
    retry = post_cancel(lambda_context, {"projectId": PROJECT}, token=mint())

    assert retry.status == 200
    assert retry.body["messageIds"] == ["m2"]
    assert published_ids(scene) == ["m2"]


def test_eventbridge_down_cancels_nothing(scene, clients, mint, lambda_context):
    post_cancel(lambda_context, {"projectId": "warm-up"}, token=mint())
    clients["events"].intercept["put_events"] = lambda **_: (_ for _ in ()).throw(
        client_error("InternalException", "PutEvents")
    )

    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token=mint())

    assert answer.status == 503
    assert [scene.status(m) for m in ("m1", "m2", "m3")] == ["processing"] * 3


def test_write_failing_part_way_keeps_what_was_cancelled(scene, clients, mint, lambda_context):
    post_cancel(lambda_context, {"projectId": "warm-up"}, token=mint())
    dynamodb = clients["dynamodb"]

    def update_item(**kwargs: Any) -> Any:
        if kwargs["Key"]["id"]["S"] == "m2":
            raise client_error("ProvisionedThroughputExceededException", "UpdateItem")
        return dynamodb.real.update_item(**kwargs)

    dynamodb.intercept["update_item"] = update_item

    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token=mint())

    assert answer.status == 503
    assert [scene.status(m) for m in ("m1", "m2", "m3")] == ["cancelled", "processing", "cancelled"]

    dynamodb.intercept.clear()
    retry = post_cancel(lambda_context, {"projectId": PROJECT}, token=mint())
    assert retry.body == {"success": True, "cancelled": True, "messageIds": ["m2"]}


def test_dynamodb_down_on_read_is_503_and_changes_nothing(scene, clients, mint, lambda_context):
    post_cancel(lambda_context, {"projectId": "warm-up"}, token=mint())
    clients["dynamodb"].intercept["get_item"] = lambda **_: (_ for _ in ()).throw(
        client_error("InternalServerError", "GetItem")
    )

    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token=mint())

    assert answer.status == 503
    assert "test-projects" not in json.dumps(answer.body)
    assert scene.published() == []


def test_message_that_completes_during_the_cancel_is_neither_overwritten_nor_reported(
    scene, clients, mint, lambda_context
):
    post_cancel(lambda_context, {"projectId": "warm-up"}, token=mint())
    events = clients["events"]

    def agent_finishes_m2_meanwhile(**kwargs: Any) -> Any:
        scene.dynamodb.update_item(
            TableName="test-messages",
            Key={"id": {"S": "m2"}},
            UpdateExpression="SET #s = :done",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":done": {"S": "completed"}},
        )
        return events.real.put_events(**kwargs)

    events.intercept["put_events"] = agent_finishes_m2_meanwhile

    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token=mint())

    assert answer.status == 200
    assert sorted(answer.body["messageIds"]) == ["m1", "m3"]
    assert scene.message("m2")["status"] == "completed"
    assert "cancelledAt" not in scene.message("m2")


def test_reads_use_the_index_and_writes_are_conditional_batched_and_never_scan(
    store, clients, mint, lambda_context
):
    store.put_project()
    for number in range(25):
        store.put_message(f"p{number:02d}", conversation_id=f"conv_{number % 4}")
    for number in range(5):
        store.put_message(f"done{number}", status="completed")

    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token=mint())

    assert len(answer.body["messageIds"]) == 25
    operations = [name for client in clients.values() for name, _ in client.calls]
    assert "scan" not in operations
    assert "Scan" not in operations
    queries = [kwargs for name, kwargs in clients["dynamodb"].calls if name in ("query", "Query")]
    assert [q["IndexName"] for q in queries] == ["byProjectAndStatus"]
    assert queries[0]["ExpressionAttributeValues"][":processing"] == {"S": "processing"}
    batches = [kwargs["Entries"] for name, kwargs in clients["events"].calls if name == "put_events"]
    assert [len(batch) for batch in batches] == [10, 10, 5]
    updates = [kwargs for name, kwargs in clients["dynamodb"].calls if name == "update_item"]
    assert len(updates) == 25
    assert all(update["ConditionExpression"] == "#status = :processing" for update in updates)


def test_processing_messages_beyond_one_query_page_are_all_cancelled(store, mint, lambda_context):
    store.put_project()
    for number in range(15):
        store.put_message(f"m{number:02d}")
        store.dynamodb.update_item(  # a long prompt: 15 of these exceed DynamoDB's 1 MB page
            TableName="test-messages",
            Key={"id": {"S": f"m{number:02d}"}},
            UpdateExpression="SET content = :c",
            ExpressionAttributeValues={":c": {"S": "x" * 100_000}},
        )
    first_page = store.dynamodb.query(
        TableName="test-messages",
        IndexName="byProjectAndStatus",
        KeyConditionExpression="projectId = :p AND #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":p": {"S": PROJECT}, ":s": {"S": "processing"}},
    )
    assert "LastEvaluatedKey" in first_page

    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token=mint())

    assert len(answer.body["messageIds"]) == 15


@pytest.mark.usefixtures("scene")
def test_dependency_failures_are_counted_by_dependency(clients, mint, lambda_context, capfd):
    post_cancel(lambda_context, {"projectId": "warm-up"}, token=mint())
    reject_entries(clients, {"m1", "m2", "m3"}, times=1_000)
    capfd.readouterr()

    post_cancel(lambda_context, {"projectId": PROJECT}, token=mint())

    blobs = [json.loads(line) for line in capfd.readouterr().out.splitlines() if '"_aws"' in line]
    failures = [blob for blob in blobs if "DependencyFailures" in blob]
    assert [blob["dependency"] for blob in failures] == ["eventbridge"]
