"""`cancel-service status` against moto: the template's queues and the stack's record, as an
operator reads them: each lane's backlog, the bulk lane's time left at the stack's rate, the
oldest age from CloudWatch (never by reading a message), the dead letters."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import cancel_service_cli as cli
from cancel_service_cli.status import format_duration
from support.service_queues import SERVICE_STACK, STOP_RATE, ServiceQueues

STOP = {"detail": {"messageId": "m1", "executionArn": "arn:aws:states:us-east-1:123456789012:execution:a:b"}}


def status_json(capsys: pytest.CaptureFixture[str], *arguments: str) -> dict[str, Any]:
    assert cli.main(["status", *arguments, "--json"]) == 0
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


def lane(report: dict[str, Any], logical_id: str) -> dict[str, Any]:
    (found,) = [lane for lane in report["lanes"] if lane["name"].endswith(f"-{logical_id}")]
    return found


def dead_letters(report: dict[str, Any], logical_id: str) -> dict[str, Any]:
    (found,) = [queue for queue in report["deadLetterQueues"] if queue["name"].endswith(f"-{logical_id}")]
    return found


def test_a_bulk_backlog_shows_its_depth_in_flight_and_time_left_at_the_stacks_rate(
    service: ServiceQueues, capsys: pytest.CaptureFixture[str]
) -> None:
    service.send(service.bulk_lane, [STOP] * 250)
    service.sqs.receive_message(QueueUrl=service.urls[service.bulk_lane], MaxNumberOfMessages=10)
    service.send(service.bulk_dead_letters, [STOP] * 3)
    service.send("UndeliveredEventsQueue", [STOP])

    report = status_json(capsys, "--stack", SERVICE_STACK)

    assert report["stopExecutionsPerSecond"] == float(STOP_RATE)
    stops = lane(report, service.bulk_lane)
    assert (stops["waiting"], stops["inFlight"], stops["delayed"]) == (240, 10, 0)
    assert stops["paced"] is True
    assert stops["timeLeftSeconds"] == 250 / float(STOP_RATE)
    assert dead_letters(report, service.bulk_dead_letters)["messages"] == 3
    assert dead_letters(report, service.bulk_dead_letters)["from"] == [stops["name"]]
    assert dead_letters(report, "UndeliveredEventsQueue") | {"url": ""} == {
        "name": f"{SERVICE_STACK}-UndeliveredEventsQueue",
        "url": "",
        "messages": 1,
        "from": [],
    }
    assert dead_letters(report, "FailedEventsQueue")["messages"] == 0
    # Reading the status received nothing: no stop came any closer to its dead-letter queue.
    attributes = service.sqs.get_queue_attributes(
        QueueUrl=service.urls[service.bulk_lane], AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "10"


def test_the_human_status_says_how_long_the_bulk_lane_needs_and_how_to_redrive(
    service: ServiceQueues, capsys: pytest.CaptureFixture[str]
) -> None:
    service.send(service.bulk_lane, [STOP] * 25)
    service.send(service.bulk_dead_letters, [STOP] * 2)

    assert cli.main(["status", "--stack", SERVICE_STACK, "--rate", "0.5"]) == 0

    out = capsys.readouterr().out
    assert f"stack {SERVICE_STACK}, StopExecutionsPerSecond 0.5" in out
    assert "bulk lane: 50s left at 0.5 stops/s" in out
    assert "`cancel-service redrive` moves dead letters back to their lane" in out
    (line,) = [
        line for line in out.splitlines() if line.strip().startswith(service.names[service.bulk_lane] + " ")
    ]
    assert line.split()[1:4] == ["25", "0", "0"]


def test_the_oldest_age_is_cloudwatchs_latest_datapoint_with_its_time(
    service: ServiceQueues, capsys: pytest.CaptureFixture[str]
) -> None:
    service.send(service.bulk_lane, [STOP])
    now = datetime.now(UTC).replace(microsecond=0)
    for minutes_ago, age in ((4, 60.0), (1, 240.0)):
        service.cloudwatch.put_metric_data(
            Namespace="AWS/SQS",
            MetricData=[
                {
                    "MetricName": "ApproximateAgeOfOldestMessage",
                    "Dimensions": [{"Name": "QueueName", "Value": service.names[service.bulk_lane]}],
                    "Timestamp": now - timedelta(minutes=minutes_ago),
                    "Value": age,
                }
            ],
        )

    age = lane(status_json(capsys, "--stack", SERVICE_STACK), service.bulk_lane)["oldestAge"]

    assert age["source"] == "cloudwatch"
    assert age["seconds"] == 240.0
    # CloudWatch dates a datapoint by the start of its one-minute period.
    measured_at = datetime.fromisoformat(age["measuredAt"].replace("Z", "+00:00"))
    assert now - timedelta(minutes=2) < measured_at <= now - timedelta(minutes=1)


def test_without_a_datapoint_the_age_is_unknown_and_says_why_and_an_empty_lane_has_none(
    service: ServiceQueues, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lane(status_json(capsys, "--stack", SERVICE_STACK), service.bulk_lane)["oldestAge"] == {
        "seconds": None,
        "measuredAt": None,
        "source": "empty",
    }
    service.send(service.bulk_lane, [STOP])

    assert cli.main(["status", "--stack", SERVICE_STACK]) == 0

    assert "unknown (no CloudWatch datapoint in the last 15 min)" in capsys.readouterr().out


def test_named_queues_bring_their_dead_letter_queue_and_need_a_rate_for_the_time_left(
    service: ServiceQueues, capsys: pytest.CaptureFixture[str]
) -> None:
    service.send(service.bulk_lane, [STOP] * 4)
    name = service.names[service.bulk_lane]

    report = status_json(capsys, "--queue", name)
    assert [queue["name"] for queue in report["lanes"]] == [name]
    assert [queue["name"] for queue in report["deadLetterQueues"]] == [
        service.names[service.bulk_dead_letters]
    ]
    assert report["lanes"][0]["timeLeftSeconds"] is None

    assert cli.main(["status", "--queue", service.urls[service.bulk_lane]]) == 0
    assert "time left unknown (give --rate" in capsys.readouterr().out

    assert (
        lane(status_json(capsys, "--queue", name, "--rate", "2"), service.bulk_lane)["timeLeftSeconds"] == 2.0
    )


@pytest.mark.usefixtures("service")
@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ([], "one of the arguments --stack --queue is required"),
        (["--stack", SERVICE_STACK, "--queue", "q"], "not allowed with"),
        (["--stack", SERVICE_STACK, "--rate", "0"], "--rate"),
        (["--stack", SERVICE_STACK, "--rate", "fast"], "--rate"),
    ],
)
def test_a_refused_command_line_exits_2(
    capsys: pytest.CaptureFixture[str], arguments: list[str], named: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["status", *arguments])

    assert exit_.value.code == 2
    assert named in capsys.readouterr().err


@pytest.mark.usefixtures("service")
@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["--stack", "no-such-stack"], "stack no-such-stack: Stack with id no-such-stack does not exist"),
        (["--queue", "no-such-queue"], "queue no-such-queue:"),
    ],
)
def test_a_stack_or_queue_that_does_not_exist_exits_1_naming_it(
    capsys: pytest.CaptureFixture[str], arguments: list[str], said: str
) -> None:
    assert cli.main(["status", *arguments]) == 1

    captured = capsys.readouterr()
    assert said in captured.err
    assert captured.out == ""


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0s"),
        (59.4, "59s"),
        (60, "1m 00s"),
        (3599, "59m 59s"),
        (3600, "1h 00m"),
        (5000, "1h 23m"),
        (200000, "2d 07h"),
    ],
)
def test_durations_read_as_an_operator_reads_them(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown
