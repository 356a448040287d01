"""`cancel-service redrive` against moto: dead letters back on the lane they came from, counted,
none lost when the lane refuses some; a dry run moves nothing. moto has no message move task, as
some endpoints have none: the command then receives, sends and only then deletes. The move task
itself (AWS's answers, which moto cannot give) is followed through botocore's Stubber."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto.sqs.exceptions import SQSException
from moto.sqs.models import SQSBackend
from moto.sqs.responses import SQSResponse

import cancel_service_cli as cli
from cancel_service_cli.queues import Queue
from cancel_service_cli.redrive import Move, redrive
from support.service_queues import SERVICE_STACK, ServiceQueues


def stop(message_id: str) -> dict[str, Any]:
    return {"detail-type": "Message Cancel Requested", "detail": {"messageId": message_id}}


@pytest.fixture(autouse=True)
def no_move_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto answers StartMessageMoveTask as an endpoint that does not offer it."""

    def unknown(_self: SQSResponse) -> Any:
        raise SQSException("UnsupportedOperation", "StartMessageMoveTask is not supported here")

    monkeypatch.setattr(SQSResponse, "start_message_move_task", unknown, raising=False)


def test_moves_every_dead_letter_back_to_its_lane_with_its_attributes_and_counts_them(
    service: ServiceQueues, capsys: pytest.CaptureFixture[str]
) -> None:
    dead, lane = service.names[service.bulk_dead_letters], service.names[service.bulk_lane]
    service.send(service.bulk_dead_letters, [stop(f"m{index}") for index in range(25)], origin="rule")

    assert cli.main(["redrive", "--stack", SERVICE_STACK, "--json"]) == 0

    captured = capsys.readouterr()
    (move,) = [move for move in json.loads(captured.out)["moves"] if move["source"] == dead]
    assert move | {"source_url": "", "destination_url": ""} == {
        "source": dead,
        "destination": lane,
        "source_url": "",
        "destination_url": "",
        "messages": 25,
        "dry_run": False,
        "method": "receive-send",
        "moved": 25,
        "failed": 0,
        "error": None,
    }
    assert "UnsupportedOperation): moving by receive, send, delete" in captured.err
    assert f"moved 25 message(s) from {dead} to {lane} (receive-send)" in captured.err
    assert service.drain(service.bulk_dead_letters) == []
    moved = service.drain(service.bulk_lane)
    assert sorted(json.loads(message["Body"])["detail"]["messageId"] for message in moved) == sorted(
        f"m{index}" for index in range(25)
    )
    assert {message["MessageAttributes"]["origin"]["StringValue"] for message in moved} == {"rule"}


def test_a_dry_run_counts_and_moves_nothing(
    service: ServiceQueues, capsys: pytest.CaptureFixture[str]
) -> None:
    dead, lane = service.names[service.bulk_dead_letters], service.names[service.bulk_lane]
    service.send(service.bulk_dead_letters, [stop("m1"), stop("m2")])

    assert cli.main(["redrive", "--stack", SERVICE_STACK, "--dry-run"]) == 0

    assert f"would move 2 message(s) from {dead} to {lane} (dry run)" in capsys.readouterr().out
    assert len(service.drain(service.bulk_dead_letters)) == 2
    assert service.drain(service.bulk_lane) == []


def test_messages_the_lane_refuses_stay_in_the_dead_letter_queue_and_exit_1(
    service: ServiceQueues, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dead, lane = service.names[service.bulk_dead_letters], service.names[service.bulk_lane]
    sent = SQSBackend.send_message_batch

    def refusing(self: SQSBackend, queue_name: str, entries: dict[str, dict[str, Any]]) -> Any:
        refused = {key: entry for key, entry in entries.items() if "refused" in entry["MessageBody"]}
        accepted = {key: entry for key, entry in entries.items() if key not in refused}
        messages, failed = sent(self, queue_name, accepted) if accepted else ([], [])
        return messages, failed + [
            {"Id": entry["Id"], "SenderFault": False, "Code": "InternalError", "Message": "try again"}
            for entry in refused.values()
        ]

    service.send(service.bulk_dead_letters, [stop("m1"), stop("refused"), stop("m3")])
    monkeypatch.setattr(SQSBackend, "send_message_batch", refusing)

    assert cli.main(["redrive", "--stack", SERVICE_STACK]) == 1

    assert (
        f"moved 2 message(s) from {dead} to {lane} (receive-send); 1 could not be sent"
        in capsys.readouterr().out
    )
    assert sorted(json.loads(m["Body"])["detail"]["messageId"] for m in service.drain(service.bulk_lane)) == [
        "m1",
        "m3",
    ]
    # The refused one is still there, invisible until its receive's visibility timeout ends.
    attributes = service.sqs.get_queue_attributes(
        QueueUrl=service.urls[service.bulk_dead_letters],
        AttributeNames=["ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"


def test_a_named_dead_letter_queue_goes_back_to_the_queue_whose_redrive_policy_names_it(
    service: ServiceQueues, capsys: pytest.CaptureFixture[str]
) -> None:
    dead, lane = service.names[service.bulk_dead_letters], service.names[service.bulk_lane]
    service.send(service.bulk_dead_letters, [stop("m1")])

    assert cli.main(["redrive", "--queue", dead]) == 0

    assert f"moved 1 message(s) from {dead} to {lane}" in capsys.readouterr().out
    assert len(service.drain(service.bulk_lane)) == 1


def test_a_queue_without_a_source_needs_to_and_to_takes_them_there(
    service: ServiceQueues, capsys: pytest.CaptureFixture[str]
) -> None:
    lane = service.names[service.bulk_lane]
    undelivered = f"{SERVICE_STACK}-UndeliveredEventsQueue"
    service.send("UndeliveredEventsQueue", [stop("m1")])

    assert cli.main(["redrive", "--queue", undelivered]) == 1
    assert f"{undelivered} is the dead-letter queue of 0 queues: name the destination with --to" in (
        capsys.readouterr().err
    )
    assert len(service.drain(service.bulk_lane)) == 0

    assert cli.main(["redrive", "--queue", undelivered, "--to", lane]) == 0
    assert len(service.drain(service.bulk_lane)) == 1


def test_an_empty_dead_letter_queue_has_nothing_to_move(
    service: ServiceQueues, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = service.names[service.bulk_dead_letters]
    assert cli.main(["redrive", "--stack", SERVICE_STACK]) == 0

    assert f"nothing to move from {dead}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ([], "one of the arguments --stack --queue is required"),
        (["--stack", SERVICE_STACK, "--to", "some-queue"], "--to goes with --queue"),
        (["--stack", SERVICE_STACK, "--queue", "some-queue"], "not allowed with"),
    ],
)
def test_a_refused_command_line_exits_2_and_moves_nothing(
    service: ServiceQueues, capsys: pytest.CaptureFixture[str], arguments: list[str], named: str
) -> None:
    service.send(service.bulk_dead_letters, [stop("m1")])

    with pytest.raises(SystemExit) as exit_:
        cli.main(["redrive", *arguments])

    assert exit_.value.code == 2
    assert named in capsys.readouterr().err
    assert len(service.drain(service.bulk_dead_letters)) == 1


@pytest.mark.usefixtures("service")
def test_an_unknown_stack_exits_1_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["redrive", "--stack", "no-such-stack"]) == 1

    assert "stack no-such-stack: Stack with id no-such-stack does not exist" in capsys.readouterr().err


# --- the message move task, where the endpoint offers it (AWS's answers, stubbed) -----------------

DEAD_QUEUE = Queue("dead", "https://sqs/dead", "arn:aws:sqs:us-east-1:123456789012:dead", 7, 0, 0, None)
LANE_QUEUE = Queue(
    "lane", "https://sqs/lane", "arn:aws:sqs:us-east-1:123456789012:lane", 0, 0, 0, DEAD_QUEUE.arn
)


def task(status: str, moved: int, **more: Any) -> dict[str, Any]:
    return {"Results": [{"Status": status, "ApproximateNumberOfMessagesMoved": moved, **more}]}


@pytest.mark.parametrize(
    ("ending", "error"),
    [
        (task("COMPLETED", 7), None),
        (task("FAILED", 3, FailureReason="AccessDenied"), "the move task ended FAILED: AccessDenied"),
    ],
)
def test_the_move_task_is_followed_to_its_end_and_its_count_reported(
    monkeypatch: pytest.MonkeyPatch, ending: dict[str, Any], error: str | None
) -> None:
    monkeypatch.setattr("cancel_service_cli.redrive.MOVE_TASK_POLL_SECONDS", 0)
    sqs = boto3.client("sqs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    listed = {"SourceArn": DEAD_QUEUE.arn, "MaxResults": 1}
    with Stubber(sqs) as stub:
        stub.add_response(
            "start_message_move_task",
            {"TaskHandle": "handle"},
            {"SourceArn": DEAD_QUEUE.arn, "DestinationArn": LANE_QUEUE.arn},
        )
        stub.add_response("list_message_move_tasks", task("RUNNING", 2), listed)
        stub.add_response("list_message_move_tasks", ending, listed)
        move = Move("dead", "lane", DEAD_QUEUE.url, LANE_QUEUE.url, 7, dry_run=False)

        redrive(sqs, DEAD_QUEUE, LANE_QUEUE, move, io.StringIO())

        stub.assert_no_pending_responses()
    assert (move.method, move.moved, move.error, move.ok) == (
        "move-task",
        ending["Results"][0]["ApproximateNumberOfMessagesMoved"],
        error,
        error is None,
    )
