"""A bulk happens once per bulkId: Lambda's retries, EventBridge's second deliveries, replays of
old continuations and an operator sending the request again change nothing that is done, never
cancel past the cap, never start a second chain, and never publish a second report; the one
report's counts and selector come from the bulk's state, never from an event."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from cancel_service.core import bulk
from cancel_service.errors import DependencyUnavailable
from cancel_service.handlers import bulk_cancel
from support.bulk_scene import LONG_AGO, bulk_event, put_processing_messages, roomy_context
from support.client_faults import ClientWithFaults, install
from support.constants import TABLE_NAMES
from support.lambda_context import BudgetContext
from support.store import Store

pytestmark = pytest.mark.usefixtures("no_retry_delay")


def one_page_context() -> BudgetContext:
    """Time for one page only: the rest goes to a continuation."""
    return BudgetContext(remaining_ms=25_000, step_ms=10_000)


@pytest.fixture
def clients(store: Store, monkeypatch: pytest.MonkeyPatch) -> dict[str, ClientWithFaults]:  # noqa: ARG001
    """The function's clients (after the store's moto), built by a first bulk that selects nothing."""
    created = install(monkeypatch)
    bulk_cancel.handler(bulk_event({"projectIds": ["nothing-here"]}), roomy_context())
    return created


@pytest.fixture
def continuations(route: Callable[..., Any]) -> Any:
    return route("BulkCancelFunction", "BulkCancelRequested")


def cancelled_by(store: Store, bulk_id: str) -> int:
    items = store.dynamodb.scan(TableName=TABLE_NAMES["MessagesTable"])["Items"]
    return sum(1 for item in items if item.get("cancelRequestId", {}).get("S") == bulk_id)


def refuse_put_events(clients: dict[str, ClientWithFaults], detail_type: str, times: int | None) -> None:
    """EventBridge refuses entries of this detail type (`times` calls, None: until told)."""
    events = clients["events"]
    left = [times]

    def put_events(**kwargs: Any) -> Any:
        entries = kwargs["Entries"]
        if entries[0]["DetailType"] == detail_type and (left[0] is None or left[0] > 0):
            if left[0] is not None:
                left[0] -= 1
            failure = {"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"}
            return {"FailedEntryCount": len(entries), "Entries": [failure] * len(entries)}
        return events.real.put_events(**kwargs)

    events.intercept["put_events"] = put_events


def lose_answer_of(clients: dict[str, ClientWithFaults], detail_type: str) -> None:
    """EventBridge accepts the first entry of this detail type, and its answer is lost."""
    events = clients["events"]
    lost = [False]

    def put_events(**kwargs: Any) -> Any:
        answer = events.real.put_events(**kwargs)
        if kwargs["Entries"][0]["DetailType"] == detail_type and not lost[0]:
            lost[0] = True
            raise ReadTimeoutError(endpoint_url="https://events", error="read timed out")
        return answer

    events.intercept["put_events"] = put_events


# --- the report ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cap", "count", "expected"), [(50, 300, ("capped", 50)), (None, 30, ("finished", 30))]
)
def test_a_refused_report_is_put_again_by_lambdas_retry_with_the_bulks_true_counts(
    store, clients, reports, cap, count, expected
):
    put_processing_messages(store, count, ["p1"])
    detail = {"projectIds": ["p1"], "bulkId": "report-refused", **({"maxMessages": cap} if cap else {})}
    refuse_put_events(clients, "Bulk Cancel Completed", times=None)

    with pytest.raises(DependencyUnavailable):
        bulk_cancel.handler(bulk_event(detail), roomy_context())
    del clients["events"].intercept["put_events"]
    for _ in range(2):  # Lambda's two retries of the same event
        retry = bulk_cancel.handler(bulk_event(detail), roomy_context())
        assert retry["messageIds"] == []

    (report,) = reports()
    assert (report["outcome"], report["cancelled"]) == expected
    assert cancelled_by(store, "report-refused") == expected[1]


def test_a_report_whose_answer_was_lost_is_put_again_the_same_never_contradicted(store, clients, reports):
    put_processing_messages(store, 30, ["p1"])
    request = bulk_event({"projectIds": ["p1"], "bulkId": "report-lost"})
    lose_answer_of(clients, "Bulk Cancel Completed")

    with pytest.raises(DependencyUnavailable):
        bulk_cancel.handler(request, roomy_context())
    bulk_cancel.handler(request, roomy_context())  # Lambda's retry

    published = reports()
    assert len(published) == 2  # the first put was accepted, its answer lost: put once more...
    assert published[0] == published[1]  # ...as the same report
    assert (published[0]["outcome"], published[0]["cancelled"], published[0]["failed"]) == ("finished", 30, 0)


def test_a_bulk_that_did_all_its_work_is_reported_finished_although_its_first_report_was_refused(
    store, clients, reports
):
    put_processing_messages(store, 10, ["p1"])
    request = bulk_event({"projectIds": ["p1"], "bulkId": "all-done"})
    refuse_put_events(clients, "Bulk Cancel Completed", times=3)  # every attempt of one invocation

    with pytest.raises(DependencyUnavailable):
        bulk_cancel.handler(request, roomy_context())
    bulk_cancel.handler(request, roomy_context())

    (report,) = reports()
    assert (report["outcome"], report["cancelled"], report["selected"]) == ("finished", 10, 10)


# --- continuations -------------------------------------------------------------------------------


def test_a_continuation_whose_answer_was_lost_does_not_fork_the_bulk(store, clients, reports, continuations):
    put_processing_messages(store, 150, ["p1"])
    request = bulk_event({"projectIds": ["p1"], "bulkId": "fork"})
    lose_answer_of(clients, "Bulk Cancel Requested")

    with pytest.raises(DependencyUnavailable):
        bulk_cancel.handler(request, one_page_context())
    assert reports() == []  # not reported failed: the bulk goes on
    bulk_cancel.handler(request, roomy_context())  # Lambda's retry puts the continuation again
    delivered = continuations.take()
    assert len(delivered) == 2
    assert delivered[0]["detail"] == delivered[1]["detail"]

    answers = [bulk_cancel.handler(event, roomy_context()) for event in delivered]

    assert sorted(len(answer["messageIds"]) for answer in answers) == [0, 50]
    (report,) = reports()
    assert (report["outcome"], report["cancelled"], report["invocations"]) == ("finished", 150, 2)
    assert cancelled_by(store, "fork") == 150


@pytest.mark.usefixtures("clients")
def test_an_old_continuation_replayed_after_the_end_changes_nothing_and_reports_nothing(
    store, reports, continuations
):
    put_processing_messages(store, 150, ["p1"])
    bulk_cancel.handler(bulk_event({"projectIds": ["p1"], "bulkId": "replayed"}), one_page_context())
    (continuation,) = continuations.take()
    bulk_cancel.handler(continuation, roomy_context())
    reports()
    store.put_message("late", project_id="p1", updated_at=LONG_AGO)

    answer = bulk_cancel.handler(continuation, roomy_context())

    assert (answer["accepted"], answer["messageIds"]) == (True, [])
    assert reports() == []
    assert store.status("late") == "processing"


@pytest.mark.usefixtures("clients")
def test_a_continuations_carried_progress_and_selector_are_not_believed(store, reports, continuations):
    put_processing_messages(store, 300, ["p1"])
    bulk_cancel.handler(
        bulk_event({"projectIds": ["p1"], "bulkId": "trusted", "maxMessages": 150}), one_page_context()
    )
    (continuation,) = continuations.take()
    detail = continuation["detail"]
    # The cap said reached, totals and selector made up.
    forged = {**detail["cursor"]["progress"], "cancelled": 150, "selected": 9999, "failed": 7}
    continuation["detail"] = {**detail, "cursor": {**detail["cursor"], "progress": forged}}

    bulk_cancel.handler(continuation, roomy_context())

    (report,) = reports()
    assert (report["outcome"], report["cancelled"], report["selected"], report["failed"]) == (
        "capped",
        150,
        150,
        0,
    )
    assert report["selector"] == {"projectIds": ["p1"], "projectCount": 1}
    assert cancelled_by(store, "trusted") == 150


def test_a_continuation_of_a_bulk_never_started_is_refused(bulk_scene, reports):
    forged = bulk_event(
        {"projectIds": ["p1"], "bulkId": "never", "cursor": {"link": 1, "progress": {"cancelled": 5}}},
        source="app.messages.bulk",
    )

    assert bulk_cancel.handler(forged, roomy_context()) == {"accepted": False}
    assert bulk_scene.status("a1") == "processing"
    assert reports() == []


# --- duplicates and one bulkId for two bulks -----------------------------------------------------


@pytest.mark.usefixtures("clients")
def test_a_request_delivered_twice_cancels_up_to_its_cap_once_and_reports_once(store, reports):
    put_processing_messages(store, 100, ["p1"])
    request = bulk_event({"projectIds": ["p1"], "bulkId": "twice", "maxMessages": 40})

    first = bulk_cancel.handler(request, roomy_context())
    second = bulk_cancel.handler(request, roomy_context())

    assert (len(first["messageIds"]), second["messageIds"]) == (40, [])
    (report,) = reports()
    assert (report["outcome"], report["cancelled"]) == ("capped", 40)
    assert cancelled_by(store, "twice") == 40


def test_a_second_delivery_while_the_first_runs_does_nothing(store, clients, reports):
    put_processing_messages(store, 100, ["p1"])
    request = bulk_event({"projectIds": ["p1"], "bulkId": "meanwhile", "maxMessages": 40})
    dynamodb = clients["dynamodb"]
    second: list[dict[str, Any]] = []
    once = threading.Lock()  # the cancel writes run in parallel: one of them delivers it

    def update_item(**kwargs: Any) -> Any:
        if kwargs["TableName"] == TABLE_NAMES["MessagesTable"] and once.acquire(blocking=False):
            second.append(bulk_cancel.handler(request, roomy_context()))  # EventBridge delivers it again
        return dynamodb.real.update_item(**kwargs)

    dynamodb.intercept["update_item"] = update_item
    first = bulk_cancel.handler(request, roomy_context())

    assert (len(first["messageIds"]), second[0]["messageIds"]) == (40, [])
    (report,) = reports()
    assert (report["cancelled"], report["invocations"]) == (40, 1)
    assert cancelled_by(store, "meanwhile") == 40


def test_a_known_bulk_id_with_another_selection_is_refused_and_counted(
    bulk_scene, reports, log_lines, capsys
):
    first = bulk_cancel.handler(bulk_event({"projectIds": ["p1"], "bulkId": "shared"}), roomy_context())
    other = bulk_cancel.handler(bulk_event({"projectIds": ["p3"], "bulkId": "shared"}), roomy_context())

    assert sorted(first["messageIds"]) == ["a1", "a3"]
    assert other == {"accepted": False}
    assert bulk_scene.status("c1") == "processing"
    (report,) = reports()
    assert report["cancelled"] == 2
    assert any("known with another selection" in line["message"] for line in log_lines())
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [metric.get("BulkIdConflicts") for metric in metrics] == [None, [1.0]]


def test_two_bulks_with_one_id_racing_each_count_only_their_own(bulk_scene, monkeypatch, reports):
    clients = install(monkeypatch)
    bulk_cancel.handler(bulk_event({"projectIds": ["nothing-here"]}), roomy_context())
    reports()
    dynamodb = clients["dynamodb"]
    other: list[dict[str, Any]] = []
    once = threading.Lock()

    def update_item(**kwargs: Any) -> Any:
        if kwargs["TableName"] == TABLE_NAMES["MessagesTable"] and once.acquire(blocking=False):
            other.append(
                bulk_cancel.handler(
                    bulk_event({"ownerId": "user_2ownerB", "bulkId": "race"}), roomy_context()
                )
            )
        return dynamodb.real.update_item(**kwargs)

    dynamodb.intercept["update_item"] = update_item
    first = bulk_cancel.handler(bulk_event({"projectIds": ["p1"], "bulkId": "race"}), roomy_context())

    assert sorted(first["messageIds"]) == ["a1", "a3"]
    assert other == [{"accepted": False}]
    (report,) = reports()
    assert report["cancelled"] == cancelled_by(bulk_scene, "race") == 2


# --- nothing blocks the sweep --------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [10**11, 315_360_001])
@pytest.mark.usefixtures("bulk_scene")
def test_an_age_beyond_ten_years_is_refused_not_crashed_on(seconds):
    answer = bulk_cancel.handler(bulk_event({"olderThanSeconds": seconds}), roomy_context())

    assert answer == {"accepted": False}


@pytest.mark.usefixtures("bulk_scene")
def test_the_oldest_age_allowed_is_served():
    answer = bulk_cancel.handler(bulk_event({"olderThanSeconds": 315_360_000}), roomy_context())

    assert answer["accepted"] is True


@pytest.mark.parametrize(
    "broken",
    [{"projectId": None}, {"projectId": {"S": "../p1"}}, {"executionArn": {"N": "1"}}],
    ids=["no-projectId", "projectId-out-of-range", "executionArn-not-a-string"],
)
def test_an_unreadable_item_is_skipped_counted_failed_and_logged_and_the_sweep_goes_on(
    bulk_scene, reports, log_lines, broken
):
    item = {
        "id": {"S": "broken"},
        "projectId": {"S": "p1"},
        "status": {"S": "processing"},
        "createdAt": {"S": LONG_AGO},
        "updatedAt": {"S": "2020-01-01T00:00:00.000Z"},  # the oldest: the sweep meets it first
    }
    for name, value in broken.items():
        if value is None:
            item.pop(name)
        else:
            item[name] = value
    bulk_scene.dynamodb.put_item(TableName=TABLE_NAMES["MessagesTable"], Item=item)

    for _ in range(2):  # every run of the sweep
        answer = bulk_cancel.handler(bulk_event({"olderThanSeconds": 3600}), roomy_context())
        assert answer["outcome"] == "finished"
    assert bulk_scene.status("c1") == "cancelled"  # the sweep went past it
    assert [report["failed"] for report in reports()] == [1, 1]
    skipped = [line for line in log_lines() if line["message"] == "unreadable messages skipped"]
    assert skipped
    assert skipped[0]["message_ids"] == ["broken"]


@pytest.mark.usefixtures("clients")
def test_an_id_over_1024_characters_at_a_page_boundary_is_handed_off(
    store, continuations, reports, monkeypatch
):
    long_id = "x" * 1500
    store.put_message(long_id, project_id="p1", updated_at="2020-01-01T00:00:00.000Z")
    put_processing_messages(store, 150, ["p1"])
    monkeypatch.setattr(bulk, "PAGE_SIZE", 1)  # the long id (the oldest) is the first page's last one

    bulk_cancel.handler(bulk_event({"olderThanSeconds": 3600, "bulkId": "long-id"}), one_page_context())
    (continuation,) = continuations.take()
    # Its position in the age index stands for the id by a digest: a sort key takes 1,024 bytes.
    after = continuation["detail"]["cursor"]["after"]
    assert after.startswith("2020-01-01T00:00:00.000Z#")
    assert len(after.encode()) <= 1024
    monkeypatch.setattr(bulk, "PAGE_SIZE", 100)

    bulk_cancel.handler(continuation, roomy_context())

    (report,) = reports()
    assert (report["outcome"], report["cancelled"]) == ("finished", 151)


def test_the_bulk_keeps_its_state_for_the_retention_the_template_sets(bulk_scene, template):
    properties = template["Resources"]["BulkStateTable"]["Properties"]
    variables = template["Resources"]["BulkCancelFunction"]["Properties"]["Environment"]["Variables"]
    retention = int(variables["BULK_STATE_RETENTION_SECONDS"])
    before = time.time()

    bulk_cancel.handler(bulk_event({"projectIds": ["p1"], "bulkId": "kept"}), roomy_context())

    table = TABLE_NAMES["BulkStateTable"]
    item = bulk_scene.dynamodb.get_item(TableName=table, Key={"bulkId": {"S": "kept"}})["Item"]
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["SSESpecification"] == {"SSEEnabled": True}
    # Longer than EventBridge's 24 hours of retries: a day or more.
    assert retention > 86_400
    assert before + retention - 1 <= int(item["expiresAt"]["N"]) <= time.time() + retention
    assert json.loads(item["report"]["S"])["bulkId"] == "kept"
