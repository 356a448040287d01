"""The EventBridge-, queue- and stream-driven functions the SAM way: `sam local invoke` of the bulk,
stop, execution status and age index sample events, in Docker, against moto. Run alone with
`pytest -m sam`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from devstack.demo import DEMO_PROJECT
from support.constants import AGENT_ROLE, EVENTS, STAND_IN_AGENT
from support.sam_local import (
    INVOKED_WITH,
    Moto,
    SamLocal,
    detail_of,
    iso,
    seed_bulk_scene,
)
from support.store import Store

pytestmark = pytest.mark.sam


@pytest.mark.parametrize(
    ("event", "cancelled"),
    [
        ("bulk-by-projects.json", ["k58xyz789ghi012", "k59abc456def789"]),
        ("bulk-by-owner.json", ["k58xyz789ghi012", "k59abc456def789"]),
        ("bulk-older-than.json", ["k58xyz789ghi012"]),
    ],
)
def test_bulk_samples_cancel_through_moto(
    sam_local: SamLocal, seeded: Store, event: str, cancelled: list[str]
) -> None:
    seed_bulk_scene(seeded)
    seeded.published()  # drain

    answer = sam_local.invoke(INVOKED_WITH[event], EVENTS / event)

    assert answer["accepted"] is True, answer
    assert sorted(answer["messageIds"]) == cancelled
    assert {seeded.message(message_id)["cancelledBy"] for message_id in cancelled} == {"system:bulk"}
    assert seeded.status("k64otherproj001") == "processing"
    published = sorted(event["detail"]["messageId"] for event in seeded.published())
    assert published == cancelled


def test_bulk_invalid_sample_changes_nothing(sam_local: SamLocal, seeded: Store) -> None:
    seed_bulk_scene(seeded)
    seeded.published()  # drain

    answer = sam_local.invoke(INVOKED_WITH["bulk-invalid.json"], EVENTS / "bulk-invalid.json")

    assert answer == {"accepted": False}
    assert seeded.status("k58xyz789ghi012") == "processing"
    assert seeded.published() == []


def test_stop_agent_sample_aborts_the_execution(sam_local: SamLocal, moto: Moto) -> None:
    # The agent's execution that the sample names: arn:...:execution:<state machine>:<name>.
    [stop_request] = json.loads((EVENTS / "stop-agent.json").read_text())["Records"]
    arn = json.loads(stop_request["body"])["detail"]["executionArn"]
    machine_name, execution_name = arn.split(":")[6:8]
    sfn = moto.client("stepfunctions")
    machines = {m["name"]: m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
    machine = (
        machines.get(machine_name)
        or sfn.create_state_machine(
            name=machine_name, roleArn=AGENT_ROLE, definition=STAND_IN_AGENT.read_text()
        )["stateMachineArn"]
    )
    started = sfn.start_execution(stateMachineArn=machine, name=execution_name)["executionArn"]
    assert started == arn
    assert sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"

    answer = sam_local.invoke(INVOKED_WITH["stop-agent.json"], EVENTS / "stop-agent.json")

    assert answer == {"batchItemFailures": []}, answer
    assert sfn.describe_execution(executionArn=arn)["status"] == "ABORTED"


def test_execution_failed_sample_fails_the_processing_message(sam_local: SamLocal, seeded: Store) -> None:
    seed_bulk_scene(seeded)
    detail = detail_of("execution-failed.json")
    seeded.put_message(detail["name"], project_id=DEMO_PROJECT, execution_arn=detail["executionArn"])

    answer = sam_local.invoke(INVOKED_WITH["execution-failed.json"], EVENTS / "execution-failed.json")

    assert answer["failedIds"] == [detail["name"]], answer
    assert seeded.status(detail["name"]) == "failed"


def test_execution_aborted_sample_confirms_the_cancelled_message_stopped(
    sam_local: SamLocal, seeded: Store
) -> None:
    detail = detail_of("execution-aborted.json")
    stopped_at = datetime.fromtimestamp(detail["stopDate"] / 1000, tz=UTC)
    seeded.put_message(
        detail["name"],
        project_id=DEMO_PROJECT,
        status="cancelled",
        execution_arn=detail["executionArn"],
        cancelledAt=iso(stopped_at - timedelta(seconds=1)),
    )

    answer = sam_local.invoke(INVOKED_WITH["execution-aborted.json"], EVENTS / "execution-aborted.json")

    assert answer["agentStoppedIds"] == [detail["name"]], answer
    assert seeded.message(detail["name"])["agentStoppedAt"] == iso(stopped_at)


def test_age_index_sample_enters_a_message_and_removes_those_that_left_processing(
    sam_local: SamLocal, seeded: Store
) -> None:
    seed_bulk_scene(seeded)  # k59 and k64 processing, with their entries

    answer = sam_local.invoke(INVOKED_WITH["age-index-stream.json"], EVENTS / "age-index-stream.json")

    assert answer == {"batchItemFailures": []}, answer
    entries = {
        item["id"]["S"]: item["position"]["S"]
        for item in seeded.dynamodb.scan(TableName=seeded.table_names["AgeIndexTable"])["Items"]
    }
    assert entries["k65newmessage01"] == "2026-11-24T12:00:00.000Z#k65newmessage01"
    assert "k59abc456def789" not in entries
    assert "k64otherproj001" not in entries
    assert "k58xyz789ghi012" in entries
