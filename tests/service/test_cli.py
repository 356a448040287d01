"""The operator's `cancel-service bulk` against moto's EventBridge and SQS: what it refuses before
sending anything, the event it puts, and `--wait` following a bulk published by a stand-in for the
bulk function (continuations with running totals, then the report), with the temporary rule and
queue gone however the command ends."""

from __future__ import annotations

import _thread
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from cancel_service import cli
from support.constants import BUS_NAME, PROJECT, ROOT

OPERATOR_RULE = "operator-requests"
WATCH_PREFIX = "bulk-watch-"


@dataclass
class Bus:
    """The test's bus in moto, with a queue that receives every bulk request an operator puts on it."""

    events: Any
    sqs: Any
    requests_url: str

    def requests(self, wait_seconds: int = 0) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(
            QueueUrl=self.requests_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
        ).get("Messages", [])
        for message in messages:
            self.sqs.delete_message(QueueUrl=self.requests_url, ReceiptHandle=message["ReceiptHandle"])
        return [json.loads(message["Body"]) for message in messages]

    def watch_rules(self) -> list[str]:
        rules = self.events.list_rules(EventBusName=BUS_NAME)["Rules"]
        return [rule["Name"] for rule in rules if rule["Name"].startswith(WATCH_PREFIX)]

    def watch_queues(self) -> list[str]:
        urls = self.sqs.list_queues().get("QueueUrls", [])
        return [url for url in urls if f"/{WATCH_PREFIX}" in url]


@pytest.fixture
def bus(monkeypatch: pytest.MonkeyPatch) -> Iterator[Bus]:
    """An operator's AWS environment (moto in this process): only the bus, no tables."""
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        events, sqs = boto3.client("events"), boto3.client("sqs")
        events.create_event_bus(Name=BUS_NAME)
        url = sqs.create_queue(QueueName="operator-requests")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(
            Name=OPERATOR_RULE,
            EventBusName=BUS_NAME,
            EventPattern=json.dumps({"source": ["app.operator"], "detail-type": ["Bulk Cancel Requested"]}),
        )
        events.put_targets(Rule=OPERATOR_RULE, EventBusName=BUS_NAME, Targets=[{"Id": "q", "Arn": arn}])
        yield Bus(events, sqs, url)


def progress_detail(bulk_id: str, **totals: int) -> dict[str, Any]:
    """A continuation as the bulk function publishes it: the rest of the selection, a position,
    and the running totals."""
    return {
        "projectIds": [PROJECT],
        "bulkId": bulk_id,
        "cursor": {
            "startKey": {"id": {"S": "m1"}, "projectId": {"S": PROJECT}, "status": {"S": "processing"}},
            "progress": {
                "selected": 0,
                "cancelled": 0,
                "alreadyFinished": 0,
                "failed": 0,
                "invocations": 1,
                "startedAt": "2026-11-24T12:00:00.000Z",
                **totals,
            },
        },
    }


def report_detail(bulk_id: str, outcome: str = "finished", **fields: Any) -> dict[str, Any]:
    return {
        "bulkId": bulk_id,
        "selector": {"projectIds": [PROJECT]},
        "dryRun": False,
        "outcome": outcome,
        "selected": 3,
        "cancelled": 2,
        "alreadyFinished": 1,
        "failed": 0,
        "invocations": 2,
        "startedAt": "2026-11-24T12:00:00.000Z",
        "finishedAt": "2026-11-24T12:00:04.500Z",
        **fields,
    }


@dataclass
class BulkFunctionStandIn:
    """Plays the bulk function from a thread: waits for the operator's request on the bus, notes
    the temporary rule and queue policy the command made, then publishes continuations and the
    report (or, with `interrupt`, presses Ctrl-C in the command instead)."""

    bus: Bus
    outcome: str = "finished"
    interrupt: bool = False
    request: dict[str, Any] | None = None
    watch_rule: dict[str, Any] = field(default_factory=dict)
    watch_policy: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None
    report: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> BulkFunctionStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(timeout=15)
        assert not self._thread.is_alive()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            self._play()
        except BaseException as error:
            self.error = error

    def _play(self) -> None:
        deadline = time.monotonic() + 10
        while self.request is None and time.monotonic() < deadline:
            requests = self.bus.requests(wait_seconds=1)
            self.request = requests[0] if requests else None
        assert self.request is not None, "the command put no bulk request"
        events, sqs = boto3.client("events"), boto3.client("sqs")
        (rule_name,) = self.bus.watch_rules()
        self.watch_rule = events.describe_rule(Name=rule_name, EventBusName=BUS_NAME)
        (queue_url,) = self.bus.watch_queues()
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["Policy"])["Attributes"]
        self.watch_policy = json.loads(attributes["Policy"])
        if self.interrupt:
            _thread.interrupt_main()
            return
        bulk_id = self.request["detail"]["bulkId"]
        for totals in (
            {"selected": 2, "cancelled": 1, "invocations": 1},
            {"selected": 3, "cancelled": 2, "invocations": 2},
        ):
            self._publish("Bulk Cancel Requested", progress_detail(bulk_id, **totals))
        self.report = report_detail(bulk_id, self.outcome)
        self._publish("Bulk Cancel Completed", self.report)

    @staticmethod
    def _publish(detail_type: str, detail: dict[str, Any]) -> None:
        answer = boto3.client("events").put_events(
            Entries=[
                {
                    "EventBusName": BUS_NAME,
                    "Source": "app.messages.bulk",
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail),
                }
            ]
        )
        assert answer["FailedEntryCount"] == 0


# --- refused before anything is sent ------------------------------------------------------------------


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


def test_either_a_bus_or_a_stack_is_required(bus: Bus, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["bulk", "--projects", PROJECT])

    assert exit_.value.code == 2
    assert "--bus" in capsys.readouterr().err
    assert bus.requests() == []


# --- the request --------------------------------------------------------------------------------------


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


def test_json_without_wait_prints_the_request_detail_alone_on_stdout(
    bus: Bus, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["bulk", "--owner", "user_2owner", "--bulk-id", "b1", "--json", "--bus", BUS_NAME]) == 0

    output = capsys.readouterr()
    assert json.loads(output.out) == {"ownerId": "user_2owner", "bulkId": "b1"}
    assert "bulk b1 requested" in output.err


def test_a_request_the_bus_refuses_exits_1(bus: Bus, capsys: pytest.CaptureFixture[str]) -> None:
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

    assert cli.bus_of_stack(cloudformation, "svc") == "svc-cancel"


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

    with pytest.raises(cli.CommandError, match=message):
        cli.bus_of_stack(cloudformation, "svc")


# --- --wait --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("outcome", "code"), [("finished", 0), ("capped", 0), ("failed", 1)])
def test_wait_shows_progress_prints_the_report_and_exits_by_its_outcome(
    bus: Bus, capsys: pytest.CaptureFixture[str], outcome: str, code: int
) -> None:
    with BulkFunctionStandIn(bus, outcome=outcome) as bulk_function:
        result = cli.main(["bulk", "--projects", PROJECT, "--wait", "--timeout", "20s", "--bus", BUS_NAME])

    assert result == code
    assert bulk_function.request is not None
    bulk_id = bulk_function.request["detail"]["bulkId"]
    output = capsys.readouterr()
    assert "progress: 1/2 cancelled, 0 already finished, 0 failed, 1 invocation\n" in output.err
    assert "progress: 2/3 cancelled, 0 already finished, 0 failed, 2 invocations\n" in output.err
    lines = output.out.splitlines()
    assert lines[0] == f"bulk {bulk_id} requested on bus {BUS_NAME} (projects {PROJECT}); waiting"
    assert lines[1] == f"bulk {bulk_id} {outcome} in 4.5 s"
    assert f"  selection         projects {PROJECT}" in lines
    assert "  cancelled         2" in lines
    assert "  already finished  1" in lines
    assert "  invocations       2" in lines
    assert bus.watch_rules() == []
    assert bus.watch_queues() == []


def test_the_temporary_rule_takes_only_this_bulks_events_into_a_queue_only_it_may_fill(bus: Bus) -> None:
    with BulkFunctionStandIn(bus) as bulk_function:
        cli.main(["bulk", "--owner", "user_2owner", "--bulk-id", "b3", "--wait", "--bus", BUS_NAME])

    pattern = json.loads(bulk_function.watch_rule["EventPattern"])
    assert pattern["detail"] == {"bulkId": ["b3"]}
    assert "app.messages.bulk" in pattern["source"]
    assert "detail-type" not in pattern
    (statement,) = bulk_function.watch_policy["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": bulk_function.watch_rule["Arn"]}}


def test_wait_with_json_prints_the_report_detail_alone_on_stdout(
    bus: Bus, capsys: pytest.CaptureFixture[str]
) -> None:
    with BulkFunctionStandIn(bus) as bulk_function:
        code = cli.main(["bulk", "--projects", PROJECT, "--wait", "--json", "--bus", BUS_NAME])

    assert code == 0
    output = capsys.readouterr()
    assert json.loads(output.out) == bulk_function.report
    assert "  cancelled         2" in output.err


def test_wait_exits_3_when_no_report_comes_in_time_and_cleans_up(
    bus: Bus, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    code = cli.main(
        ["bulk", "--projects", PROJECT, "--bulk-id", "b4", "--wait", "--timeout", "1s", "--bus", BUS_NAME]
    )

    assert code == 3
    assert time.monotonic() - started < 10
    assert "no report of bulk b4 within 1 s" in capsys.readouterr().err
    assert [event["detail"]["bulkId"] for event in bus.requests()] == ["b4"]
    assert bus.watch_rules() == []
    assert bus.watch_queues() == []


def test_ctrl_c_while_waiting_cleans_up_and_exits_130(bus: Bus, capsys: pytest.CaptureFixture[str]) -> None:
    with BulkFunctionStandIn(bus, interrupt=True):
        code = cli.main(["bulk", "--projects", PROJECT, "--bulk-id", "b5", "--wait", "--bus", BUS_NAME])

    assert code == 130
    assert "bulk b5 goes on in the service" in capsys.readouterr().err
    assert bus.watch_rules() == []
    assert bus.watch_queues() == []


def test_a_failure_while_setting_up_the_wait_leaves_nothing_behind(
    bus: Bus, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["bulk", "--projects", PROJECT, "--wait", "--bus", "no-such-bus"])

    assert code == 1
    assert "AWS error" in capsys.readouterr().err
    assert bus.watch_queues() == []
    assert bus.requests() == []


# --- the live line ------------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    with Terminal() as stream:
        yield stream


def test_on_a_terminal_progress_is_one_line_redrawn_with_a_bar(terminal: Terminal) -> None:
    display = cli.ProgressDisplay(terminal)
    display.tick()
    display.update(cli.Progress(selected=12, cancelled=6, already_finished=1, failed=0, invocations=3))
    display.close()

    output = terminal.getvalue()
    assert output.startswith("\r| waiting for the first progress")
    assert "\n" not in output[:-1]
    last = output.rsplit("\r", 1)[1]
    assert last.startswith(
        "/ [" + "#" * 12 + "-" * 12 + "] 6/12 cancelled, 1 already finished, 0 failed, 3 invocations"
    )
    assert output.endswith("\n")


def test_progress_never_goes_back_to_an_earlier_total(terminal: Terminal) -> None:
    display = cli.ProgressDisplay(terminal)
    later = cli.Progress(selected=10, cancelled=8, already_finished=0, failed=0, invocations=3)
    display.update(later)
    display.update(cli.Progress(selected=5, cancelled=4, already_finished=0, failed=0, invocations=2))

    assert display.latest == later
    assert "4/5" not in terminal.getvalue()


def test_no_function_imports_the_command_line() -> None:
    """The command is the operator's; a function's container never loads it (nor its imports)."""
    handlers = sorted(path.stem for path in (ROOT / "src" / "cancel_service" / "handlers").glob("[a-z]*.py"))
    program = (
        "import sys\n"
        + "".join(f"import cancel_service.handlers.{name}\n" for name in handlers)
        + "print('cancel_service.cli' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=ROOT / "src",
        env={**os.environ, "POWERTOOLS_TRACE_DISABLED": "true"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert len(handlers) >= 4
    assert result.stdout.strip() == "False"
