"""The sample events of events/ for the stop, bulk, execution-status and age index functions (the
ones `sam local invoke` is run with) do what their names say."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from cancel_service.adapters.age_index import position_of
from cancel_service.handlers import age_index_stream, bulk_cancel, execution_status, stop_agent
from cancel_service.models import utc_timestamp
from devstack.demo import DEMO_PROJECT, DEMO_USER
from devstack.stream_source import StreamSource
from support.age_stream import AgeStream
from support.agent_scene import Agent
from support.constants import AGENT_STATE_MACHINE_ARN, TABLE_NAMES
from support.events import load_event
from support.store import Store

LONG_AGO = utc_timestamp(datetime.now(UTC) - timedelta(hours=2))
RECENTLY = utc_timestamp(datetime.now(UTC) - timedelta(minutes=1))
EXECUTION = AGENT_STATE_MACHINE_ARN.replace(":stateMachine:", ":execution:") + ":{}"


@pytest.fixture
def demo(store: Store) -> Store:
    store.put_project(DEMO_PROJECT, owner_id=DEMO_USER)
    store.put_project("k57otherowner01", owner_id="user_2someoneElse")
    store.put_message("k58xyz789ghi012", project_id=DEMO_PROJECT, updated_at=LONG_AGO)
    store.put_message("k59abc456def789", project_id=DEMO_PROJECT, updated_at=RECENTLY)
    store.put_message("k64otherproj001", project_id="k57otherowner01", updated_at=RECENTLY)
    return store


@pytest.mark.parametrize(
    ("name", "cancelled"),
    [
        ("bulk-by-projects.json", ["k58xyz789ghi012", "k59abc456def789"]),
        ("bulk-by-owner.json", ["k58xyz789ghi012", "k59abc456def789"]),
        ("bulk-older-than.json", ["k58xyz789ghi012"]),
    ],
)
def test_bulk_samples(demo, lambda_context, name, cancelled):
    answer = bulk_cancel.handler(load_event(name), lambda_context)

    assert answer["accepted"] is True
    assert sorted(answer["messageIds"]) == cancelled
    assert demo.message(cancelled[0])["cancelledBy"] == "system:bulk"
    assert demo.status("k64otherproj001") == "processing"


def test_bulk_invalid_sample_changes_nothing(demo, lambda_context):
    assert bulk_cancel.handler(load_event("bulk-invalid.json"), lambda_context) == {"accepted": False}
    assert demo.published() == []


@pytest.mark.usefixtures("demo")
def test_stop_agent_sample_aborts_the_execution(agent: Agent, lambda_context):
    arn = agent.start("k58xyz789ghi012")
    assert arn == EXECUTION.format("k58xyz789ghi012")

    sample = load_event("stop-agent.json")
    [stop_request] = sample["Records"]
    assert json.loads(stop_request["body"])["detail"]["executionArn"] == arn

    assert stop_agent.user_lane_handler(sample, lambda_context) == {"batchItemFailures": []}
    assert agent.wait_for(arn, {"ABORTED"}) == "ABORTED"


def test_execution_failed_sample_fails_the_processing_message(demo, lambda_context):
    demo.put_message(
        "k59abc456def789", project_id=DEMO_PROJECT, execution_arn=EXECUTION.format("k59abc456def789")
    )

    answer = execution_status.handler(load_event("execution-failed.json"), lambda_context)

    assert answer["failedIds"] == ["k59abc456def789"]
    assert demo.status("k59abc456def789") == "failed"


def test_execution_aborted_sample_confirms_the_cancelled_message_stopped(demo, lambda_context):
    event = load_event("execution-aborted.json")
    stopped_at = datetime.fromtimestamp(event["detail"]["stopDate"] / 1000, tz=UTC)
    demo.put_message(
        "k58xyz789ghi012", project_id=DEMO_PROJECT, execution_arn=EXECUTION.format("k58xyz789ghi012")
    )
    demo.dynamodb.update_item(
        TableName=TABLE_NAMES["MessagesTable"],
        Key={"id": {"S": "k58xyz789ghi012"}},
        UpdateExpression="SET #status = :cancelled, cancelledAt = :at",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={
            ":cancelled": {"S": "cancelled"},
            ":at": {"S": utc_timestamp(stopped_at - timedelta(seconds=1))},
        },
    )

    answer = execution_status.handler(event, lambda_context)

    assert answer["agentStoppedIds"] == ["k58xyz789ghi012"]
    assert demo.message("k58xyz789ghi012")["agentStoppedAt"] == utc_timestamp(stopped_at)


def test_age_index_sample_enters_a_message_and_removes_those_that_left_processing(
    demo, age_stream: AgeStream, template, lambda_context
):
    age_stream.deliver()  # the demo's processing messages have their entries
    sample = load_event("age-index-stream.json")
    stream_event = template["Resources"]["AgeIndexFunction"]["Properties"]["Events"]["MessageChanged"]
    source = StreamSource.of({**stream_event["Properties"], "Stream": "the messages table's stream"})
    assert all(source.delivers(record) for record in sample["Records"])  # none filtered out

    assert age_index_stream.handler(sample, lambda_context) == {"batchItemFailures": []}

    entries = {
        item["id"]["S"]: item["position"]["S"]
        for item in demo.dynamodb.scan(TableName=TABLE_NAMES["AgeIndexTable"])["Items"]
    }
    # k65 entered at its first updatedAt (a later one while processing writes nothing); k59 completed
    # and k64 was deleted while processing; k58, which the sample does not name, stays.
    assert entries == {
        "k58xyz789ghi012": position_of(LONG_AGO, "k58xyz789ghi012"),
        "k65newmessage01": position_of("2026-11-24T12:00:00.000Z", "k65newmessage01"),
    }
