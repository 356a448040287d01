"""The operator's `cancel-service bulk` against moto's EventBridge: what it refuses before sending
anything, the event it puts, the bus it finds in the stack's outputs; no function imports it."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from pydantic import ValidationError

import cancel_service_cli as cli
from cancel_service.event_models import BulkOlderThan
from cancel_service_cli.arguments import duration_seconds
from cancel_service_cli.errors import CommandError
from cancel_service_cli.request import bus_of_stack
from support.constants import BUS_NAME, PROJECT
from support.operator_bus import (
    Bus,
)


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["--projects", "has space"], "--projects"),
        (["--projects", "ok,,ok2"], "--projects"),
        (["--projects", "x" * 129], "--projects"),
        (["--owner", "org_2team"], "--owner"),
        (["--owner", "user_"], "--owner"),
        (["--older-than", "59s"], "--older-than"),
        (["--older-than", "2 hours"], "--older-than"),
        (["--projects", PROJECT, "--max-messages", "0"], "--max-messages"),
        (["--projects", PROJECT, "--bulk-id", "no/slash"], "--bulk-id"),
        (["--projects", PROJECT, "--bulk-id", "b" * 65], "--bulk-id"),
        (["--projects", PROJECT, "--reason", ""], "--reason"),
        (["--projects", PROJECT, "--owner", "user_2owner"], "not allowed with"),
        ([], "one of the arguments --projects --owner --older-than is required"),
    ],
)
def test_a_bad_selector_exits_2_naming_the_option_and_sends_nothing(
    bus: Bus, capsys: pytest.CaptureFixture[str], arguments: list[str], named: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["bulk", *arguments, "--wait", "--bus", BUS_NAME])

    assert exit_.value.code == 2
    assert named in capsys.readouterr().err
    assert bus.requests() == []
    assert bus.watch_rules() == []
    assert bus.watch_queues() == []


@pytest.mark.parametrize("older_than", ["100000000000s", "3651d"])
def test_an_age_the_service_refuses_is_refused_before_sending_in_the_operators_words(
    bus: Bus, capsys: pytest.CaptureFixture[str], older_than: str
) -> None:
    seconds = duration_seconds(older_than)
    with pytest.raises(ValidationError):  # the service's own model refuses it
        BulkOlderThan.model_validate({"olderThanSeconds": seconds})

    with pytest.raises(SystemExit) as exit_:
        cli.main(["bulk", "--older-than", older_than, "--bus", BUS_NAME])

    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert f"--older-than: {seconds}s refused: at least 60s, at most 3650d (ten years)" in error
    assert bus.requests() == []


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["--projects", ""], "--projects: no id refused: one or more comma-separated project ids"),
        (["--projects", ","], "--projects: '' refused: one or more comma-separated project ids"),
        (
            ["--projects", "a b"],
            "--projects: 'a b' refused: one or more comma-separated project ids, each 1 to 128",
        ),
        (
            ["--owner", "user_"],
            "--owner: 'user_' refused: a Clerk user id: user_ and 1 to 64 letters or digits",
        ),
        (["--older-than", "30"], "--older-than: 30s refused: at least 60s"),
        (
            ["--projects", PROJECT, "--bulk-id", "a b"],
            "--bulk-id: 'a b' refused: 1 to 64 letters, digits, _ and -",
        ),
        (["--projects", PROJECT, "--reason", ""], "--reason: '' refused: 1 to 128 characters"),
    ],
)
def test_a_refusal_says_the_rule_as_the_operator_types_it_not_the_validators_words(
    bus: Bus, capsys: pytest.CaptureFixture[str], arguments: list[str], said: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["bulk", *arguments, "--bus", BUS_NAME])

    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert said in error
    for validators_words in ("should", "pattern", "validation", "^["):
        assert validators_words not in error
    assert bus.requests() == []


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["--timeout", "3s"], "--timeout needs --wait"),
        (["--wait-stops"], "--wait-stops needs --wait and --stack"),
        (["--wait", "--wait-stops"], "--wait-stops needs --wait and --stack"),
    ],
)
def test_options_that_mean_something_only_while_waiting_are_refused_without_it(
    bus: Bus, capsys: pytest.CaptureFixture[str], arguments: list[str], said: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["bulk", "--projects", PROJECT, *arguments, "--bus", BUS_NAME])

    assert exit_.value.code == 2
    assert said in capsys.readouterr().err
    assert bus.requests() == []


def test_the_help_says_every_exit_code_what_a_duration_is_and_what_the_stack_gives(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["bulk", "--help"])

    help_text = " ".join(capsys.readouterr().out.split())
    for code in ("0 it finished", "1 it failed", "2 a refused command line", "3 no report", "130 Ctrl-C"):
        assert code in help_text
    assert "a bare number of seconds" in help_text
    assert "its output EventBusName names the bus" in help_text


def test_a_bus_without_a_rule_for_bulk_requests_fails_at_once_and_sends_nothing(
    bus: Bus, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    code = cli.main(["bulk", "--projects", PROJECT, "--wait", "--bus", "default"])

    assert code == 1
    assert time.monotonic() - started < 5
    assert "no enabled rule on bus default takes Bulk Cancel Requested" in capsys.readouterr().err
    assert bus.watch_rules() == []
    assert bus.watch_queues() == []


@pytest.mark.usefixtures("bus")
def test_a_bus_that_does_not_exist_is_named_with_the_region_it_was_looked_for_in(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = cli.main(["bulk", "--projects", PROJECT, "--bus", "no-such-bus"])

    assert code == 1
    assert "bus no-such-bus does not exist (region us-east-1" in capsys.readouterr().err


def test_either_a_bus_or_a_stack_is_required(bus: Bus, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["bulk", "--projects", PROJECT])

    assert exit_.value.code == 2
    assert "--bus" in capsys.readouterr().err
    assert bus.requests() == []


def test_puts_the_contract_shaped_request_from_the_operator_source(
    bus: Bus, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(
        [
            "bulk",
            "--projects",
            f"{PROJECT}, k57second",
            "--reason",
            "incident_42",
            "--dry-run",
            "--max-messages",
            "5",
            "--bulk-id",
            "incident-42_a",
            "--bus",
            BUS_NAME,
        ]
    )

    assert code == 0
    (event,) = bus.requests()
    assert event["source"] == "app.operator"
    assert event["detail-type"] == "Bulk Cancel Requested"
    assert event["detail"] == {
        "projectIds": [PROJECT, "k57second"],
        "bulkId": "incident-42_a",
        "reason": "incident_42",
        "dryRun": True,
        "maxMessages": 5,
    }
    assert "bulk incident-42_a requested on bus test-cancel-bus" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("arguments", "selection"),
    [
        (["--owner", "user_2owner"], {"ownerId": "user_2owner"}),
        (["--older-than", "2h"], {"olderThanSeconds": 7200}),
        (["--older-than", "90s"], {"olderThanSeconds": 90}),
        (["--older-than", "45m"], {"olderThanSeconds": 2700}),
        (["--older-than", "1d"], {"olderThanSeconds": 86400}),
    ],
)
def test_makes_a_bulk_id_and_prints_it(
    bus: Bus, capsys: pytest.CaptureFixture[str], arguments: list[str], selection: dict[str, Any]
) -> None:
    assert cli.main(["bulk", *arguments, "--bus", BUS_NAME]) == 0

    (event,) = bus.requests()
    bulk_id = event["detail"]["bulkId"]
    assert len(bulk_id) == 32
    int(bulk_id, 16)
    assert event["detail"] == {**selection, "bulkId": bulk_id}
    assert f"bulk {bulk_id} requested" in capsys.readouterr().out


@pytest.mark.usefixtures("bus")
def test_json_without_wait_prints_the_request_detail_alone_on_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["bulk", "--owner", "user_2owner", "--bulk-id", "b1", "--json", "--bus", BUS_NAME]) == 0

    output = capsys.readouterr()
    assert json.loads(output.out) == {"ownerId": "user_2owner", "bulkId": "b1"}
    assert "bulk b1 requested" in output.err


@pytest.mark.usefixtures("bus")
def test_a_request_the_bus_refuses_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["bulk", "--projects", PROJECT, "--bus", "no-such-bus"])

    assert code == 1
    assert "no-such-bus" in capsys.readouterr().err


def _cloudformation_answering(method: str, answer: dict[str, Any] | None = None, error: str = "") -> Any:
    """A CloudFormation client whose describe_stacks gives this answer (or error), after botocore
    checked the request against the service's model."""
    client = boto3.client("cloudformation", region_name="us-east-1")
    stubber = Stubber(client)
    if error:
        stubber.add_client_error(method, "ValidationError", error, expected_params={"StackName": "svc"})
    else:
        stubber.add_response(method, answer or {}, expected_params={"StackName": "svc"})
    stubber.activate()
    return client


def _stack(outputs: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "Stacks": [
            {
                "StackName": "svc",
                "CreationTime": "2026-11-24T12:00:00Z",
                "StackStatus": "CREATE_COMPLETE",
                "Outputs": outputs,
            }
        ]
    }


def test_the_bus_comes_from_the_stack_output() -> None:
    outputs = [
        {"OutputKey": "ApiUrl", "OutputValue": "https://x"},
        {"OutputKey": "EventBusName", "OutputValue": "svc-cancel"},
    ]
    cloudformation = _cloudformation_answering("describe_stacks", _stack(outputs))

    assert bus_of_stack(cloudformation, "svc") == "svc-cancel"


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (None, "Stack with id svc does not exist", "stack svc: Stack with id svc does not exist"),
        (
            _stack([{"OutputKey": "ApiUrl", "OutputValue": "https://x"}]),
            "",
            "stack svc has no output EventBusName",
        ),
    ],
)
def test_a_stack_without_the_bus_output_is_an_error(
    answer: dict[str, Any] | None, error: str, message: str
) -> None:
    cloudformation = _cloudformation_answering("describe_stacks", answer, error)

    with pytest.raises(CommandError, match=message):
        bus_of_stack(cloudformation, "svc")
