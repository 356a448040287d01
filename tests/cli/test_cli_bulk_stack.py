"""`cancel-service bulk --stack` as an operator tries it (moto in this process, the template's
tables, bus and queues, and the stack's record): the bulk's progress and report read from its
state even when it fits in one invocation, the agent stops still queued after the report and the
wait for them, a selection that names nothing the service knows, `bulk-report` after a timeout,
and errors that say which region and endpoint they looked in."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from pydantic import TypeAdapter

import cancel_service_cli as cli
from cancel_service.adapters.bulk_state import BulkStateTable
from cancel_service.core.bulk import new_bulk_state
from cancel_service.event_models import BulkProgress, BulkReport, BulkSelection
from cancel_service.models import utc_timestamp
from support.constants import OWNER, PROJECT
from support.operator_bus import PlayedInAThread, first_request
from support.service_queues import SERVICE_STACK, STOP_RATE, ServiceQueues

_SELECTION: TypeAdapter[BulkSelection] = TypeAdapter(BulkSelection)
REQUESTS_RULE = "operator-requests"


@dataclass
class Service:
    queues: ServiceQueues
    outputs: dict[str, str]
    requests_url: str

    @property
    def bus(self) -> str:
        return self.outputs["EventBusName"]

    def table(self, output: str) -> str:
        return self.outputs[output]

    def put_project(self, project_id: str) -> None:
        boto3.client("dynamodb").put_item(
            TableName=self.table("ProjectsTableName"),
            Item={"id": {"S": project_id}, "ownerId": {"S": OWNER}},
        )

    def requests(self, wait_seconds: int = 0) -> list[dict[str, Any]]:
        sqs = self.queues.sqs
        messages = sqs.receive_message(
            QueueUrl=self.requests_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
        ).get("Messages", [])
        for message in messages:
            sqs.delete_message(QueueUrl=self.requests_url, ReceiptHandle=message["ReceiptHandle"])
        return [json.loads(message["Body"]) for message in messages]


@pytest.fixture
def stack_service(service: ServiceQueues) -> Service:
    """The service's stack, with a rule on its bus that takes bulk requests into a queue (as the
    bulk function's rule does in the deployed stack) and the demo project."""
    (stack,) = boto3.client("cloudformation").describe_stacks(StackName=SERVICE_STACK)["Stacks"]
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack["Outputs"]}
    events, sqs = boto3.client("events"), service.sqs
    url = sqs.create_queue(QueueName="operator-requests")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(
        Name=REQUESTS_RULE,
        EventBusName=outputs["EventBusName"],
        EventPattern=json.dumps(
            {"source": [{"anything-but": "app.messages"}], "detail-type": ["Bulk Cancel Requested"]}
        ),
    )
    events.put_targets(
        Rule=REQUESTS_RULE, EventBusName=outputs["EventBusName"], Targets=[{"Id": "q", "Arn": arn}]
    )
    found = Service(service, outputs, url)
    found.put_project(PROJECT)
    return found


@dataclass
class OneInvocationBulk(PlayedInAThread):
    """Plays the bulk function for a bulk that fits in one invocation: it records the bulk's state
    as the function does (started, a page saved, ended with its report) and publishes no
    continuation. `publish_report=False`: the report event never reaches the command (a lost
    delivery), only the state has it. `queued_stops` agent stops land in the bulk lane with the
    report; `drain_after` seconds later they are gone (stopped), unless None."""

    service: Service
    outcome: str = "finished"
    selected: int = 100
    cancelled: int = 100
    end: bool = True
    publish_report: bool = True
    queued_stops: int = 0
    drain_after: float | None = None
    page_pause: float = 2.5
    request: dict[str, Any] | None = None
    JOIN_SECONDS = 30

    def _play(self) -> None:
        self.request = first_request(self.service.requests, seconds=15)
        selection = _SELECTION.validate_python(self.request["detail"])
        bulk_id = str(selection.bulk_id)
        table = BulkStateTable(self.service.table("BulkStateTableName"), boto3.client("dynamodb"))
        now = datetime.now(UTC)
        expires_at = int(now.timestamp()) + 3600
        state = table.create(new_bulk_state(selection, bulk_id, now), selection.request(), expires_at)
        token = uuid.uuid4().hex
        assert table.claim(state, token, utc_timestamp(now + timedelta(minutes=15)), utc_timestamp(now))
        page = BulkProgress(selected=self.selected, cancelled=self.cancelled, invocations=1)
        table.save(bulk_id, token, state.position, page, ())
        time.sleep(self.page_pause)  # the command reads the state every second
        if not self.end:
            return
        self.service.queues.send(self.service.queues.bulk_lane, [{"n": n} for n in range(self.queued_stops)])
        report = BulkReport(
            bulkId=bulk_id,
            selector=state.selector,
            dryRun=selection.dry_run,
            outcome=self.outcome,  # type: ignore[arg-type]
            startedAt=state.started_at,
            finishedAt=utc_timestamp(datetime.now(UTC)),
            **page.model_dump(),
        )
        table.end(bulk_id, token, report)
        if self.publish_report:
            boto3.client("events").put_events(
                Entries=[
                    {
                        "EventBusName": self.service.bus,
                        "Source": "app.messages.bulk",
                        "DetailType": "Bulk Cancel Completed",
                        "Detail": report.model_dump_json(by_alias=True, exclude_none=True),
                    }
                ]
            )
        if self.drain_after is not None:
            time.sleep(self.drain_after)
            self.service.queues.drain(self.service.queues.bulk_lane)


def bulk(*arguments: str) -> int:
    return cli.main(["bulk", "--projects", PROJECT, *arguments, "--stack", SERVICE_STACK])


def test_a_bulk_in_one_invocation_shows_its_progress_and_says_what_stops_are_still_queued(
    stack_service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    with OneInvocationBulk(stack_service, publish_report=False, queued_stops=40):
        code = bulk("--wait", "--timeout", "20s")

    assert code == 0
    output = capsys.readouterr()
    # Off a terminal: one line per change of the totals, read from the bulk's state.
    assert "progress: 100/100 cancelled, 0 already finished, 0 failed, 1 invocation\n" in output.err
    assert " finished in " in output.out  # the report, read from the state: its event never came
    rate = float(STOP_RATE)
    assert (
        f"  agent stops       40 still queued in the bulk lane (every bulk's and the sweep's), "
        f"about {round(40 / rate)}s at {rate:g} a second; --wait-stops waits until they are stopped"
    ) in output.out.splitlines()


def test_wait_stops_follows_the_bulk_lane_until_it_is_empty(
    stack_service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    with OneInvocationBulk(stack_service, queued_stops=12, drain_after=3):
        code = bulk("--wait", "--wait-stops", "--timeout", "30s")

    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("agent stops: 12 still queued in the bulk lane") for line in lines)
    assert (
        lines[-1] == "agent stops: none queued in the bulk lane: every agent stop was asked of Step Functions"
    )


def test_wait_stops_exits_3_when_stops_are_still_queued_at_the_timeout(
    stack_service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    with OneInvocationBulk(stack_service, queued_stops=5, page_pause=0.5):
        code = bulk("--wait", "--wait-stops", "--timeout", "8s")

    assert code == 3
    assert "agent stops still queued in the bulk lane after 8 s" in capsys.readouterr().err


def test_after_a_timeout_bulk_report_reads_the_progress_then_the_report(
    stack_service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    with OneInvocationBulk(stack_service, end=False, page_pause=0) as running:
        code = bulk("--bulk-id", "slow-1", "--wait", "--timeout", "3s")
    assert running.request is not None

    assert code == 3
    error = capsys.readouterr().err
    assert f"Its report, later: cancel-service bulk-report slow-1 --stack {SERVICE_STACK}" in error

    assert cli.main(["bulk-report", "slow-1", "--stack", SERVICE_STACK]) == 3
    assert "bulk slow-1 running since" in capsys.readouterr().out

    table = BulkStateTable(stack_service.table("BulkStateTableName"), boto3.client("dynamodb"))
    state = table.get("slow-1")
    assert state is not None
    assert state.lease is not None
    report = BulkReport(
        bulkId="slow-1",
        selector=state.selector,
        dryRun=False,
        outcome="finished",
        startedAt=state.started_at,
        finishedAt=utc_timestamp(datetime.now(UTC)),
        **state.progress.model_dump(),
    )
    table.end("slow-1", state.lease, report)

    assert cli.main(["bulk-report", "slow-1", "--stack", SERVICE_STACK, "--json"]) == 0
    output = capsys.readouterr()
    assert json.loads(output.out)["outcome"] == "finished"
    assert "bulk slow-1 finished in" in output.err


@pytest.mark.usefixtures("stack_service")
def test_bulk_report_of_an_unknown_bulk_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bulk-report", "never-sent", "--stack", SERVICE_STACK]) == 1
    assert "no bulk never-sent in table" in capsys.readouterr().err


def test_a_project_that_does_not_exist_is_refused_before_sending(
    stack_service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["bulk", "--projects", "nosuchproject1", "--wait", "--stack", SERVICE_STACK])

    assert code == 1
    assert "no project nosuchproject1 in the projects table" in capsys.readouterr().err
    assert stack_service.requests() == []


def test_an_unknown_project_beside_a_known_one_is_named_and_the_bulk_goes_on(
    stack_service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["bulk", "--projects", f"{PROJECT},nosuchproject1", "--stack", SERVICE_STACK])

    assert code == 0
    assert "warning: no project nosuchproject1 in the projects table" in capsys.readouterr().err
    assert len(stack_service.requests(wait_seconds=1)) == 1


def test_an_owner_without_projects_is_refused_before_sending(
    stack_service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["bulk", "--owner", "user_2nobody", "--stack", SERVICE_STACK])

    assert code == 1
    assert "user_2nobody owns no project" in capsys.readouterr().err
    assert stack_service.requests() == []


@pytest.mark.usefixtures("stack_service")
def test_a_stack_looked_for_in_another_region_says_which_region_and_endpoint(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")

    assert bulk() == 1
    assert (
        "does not exist (region eu-west-1, endpoint https://cloudformation.eu-west-1.amazonaws.com)"
        in capsys.readouterr().err
    )


def test_aws_region_alone_names_the_region_as_for_the_aws_cli(
    stack_service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")  # AWS_REGION=us-east-1 stays, as the stack's banner sets it

    assert bulk() == 0
    assert len(stack_service.requests(wait_seconds=1)) == 1
