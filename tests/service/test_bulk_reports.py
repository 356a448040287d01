"""A bulk ends with one report of its counts and outcome: finished, a dry run, capped, or failed
because its writes, its continuation or even the report could not get through."""

from __future__ import annotations

import pytest

from cancel_service.errors import DependencyUnavailable
from cancel_service.handlers import bulk_cancel
from support.bulk_scene import (
    OWNER_A,
    UNCHANGED,
    bulk_event,
    put_processing_messages,
    roomy_context,
    statuses,
)
from support.client_faults import client_error, install
from support.constants import TABLE_NAMES
from support.lambda_context import BudgetContext


def test_a_finished_bulk_reports_its_counts_once(bulk_scene, reports):
    bulk_scene.put_message("late", project_id="p1", status="completed")
    answer = bulk_cancel.handler(
        bulk_event({"projectIds": ["p1", "p3"], "bulkId": "b-1", "reason": "cleanup"}), roomy_context()
    )

    (report,) = reports()
    assert answer["outcome"] == "finished"
    assert report == {
        "bulkId": "b-1",
        "selector": {"projectIds": ["p1", "p3"], "projectCount": 2},
        "dryRun": False,
        "outcome": "finished",
        "selected": 3,
        "cancelled": 3,
        "alreadyFinished": 0,
        "failed": 0,
        "invocations": 1,
        "startedAt": report["startedAt"],
        "finishedAt": report["finishedAt"],
    }
    assert report["startedAt"] <= report["finishedAt"]


def test_a_dry_run_counts_and_changes_nothing(bulk_scene, reports):
    answer = bulk_cancel.handler(bulk_event({"ownerId": OWNER_A, "dryRun": True}), roomy_context())

    assert answer["messageIds"] == []
    assert statuses(bulk_scene) == UNCHANGED
    assert [e for e in bulk_scene.published() if e["detail-type"] == "Message Cancel Requested"] == []
    (report,) = reports()
    assert (report["dryRun"], report["outcome"], report["selected"], report["cancelled"]) == (
        True,
        "finished",
        3,
        0,
    )


def test_a_bulk_stops_at_its_cap_and_says_so(store, reports):
    put_processing_messages(store, 250, ["p1"])

    answer = bulk_cancel.handler(bulk_event({"olderThanSeconds": 3600, "maxMessages": 120}), roomy_context())

    assert len(answer["messageIds"]) == 120
    statuses_now = [store.status(f"m{n:05d}") for n in range(250)]
    assert statuses_now.count("cancelled") == 120
    (report,) = reports()
    assert (report["outcome"], report["cancelled"], report["selected"]) == ("capped", 120, 120)


@pytest.mark.parametrize(("cap", "outcome"), [(120, "capped"), (250, "finished"), (400, "finished")])
def test_a_dry_run_with_a_cap_counts_its_whole_selection(store, reports, cap, outcome):
    """So that an operator can size a selection before choosing a cap: the dry run says how many a
    real run would select in all, and whether the cap would stop it."""
    put_processing_messages(store, 250, ["p1"])

    answer = bulk_cancel.handler(
        bulk_event({"olderThanSeconds": 3600, "maxMessages": cap, "dryRun": True}), roomy_context()
    )

    assert answer["messageIds"] == []
    assert {store.status(f"m{n:05d}") for n in range(250)} == {"processing"}
    (report,) = reports()
    assert (report["outcome"], report["selected"], report["cancelled"]) == (outcome, 250, 0)


@pytest.mark.usefixtures("no_retry_delay")
def test_a_bulk_whose_writes_keep_failing_gives_up_and_reports_why(bulk_scene, monkeypatch, reports):
    clients = install(monkeypatch)
    bulk_cancel.handler(bulk_event({"projectIds": ["nothing-here"]}), roomy_context())  # builds the clients
    reports()

    dynamodb = clients["dynamodb"]

    def throttled(**kwargs):
        if kwargs["TableName"] != TABLE_NAMES["MessagesTable"]:
            return dynamodb.real.update_item(**kwargs)  # the bulk's own state
        raise client_error("ProvisionedThroughputExceededException", "UpdateItem")

    dynamodb.intercept["update_item"] = throttled

    answer = bulk_cancel.handler(bulk_event({"projectIds": ["p1"]}), roomy_context())

    assert answer["outcome"] == "failed"
    (report,) = reports()
    assert (report["outcome"], report["error"]) == ("failed", "dynamodb unavailable")
    assert (report["selected"], report["cancelled"], report["failed"]) == (2, 0, 2)
    assert bulk_scene.status("a1") == "processing"


@pytest.mark.usefixtures("no_retry_delay")
def test_when_not_even_the_report_can_be_published_the_invocation_fails_for_lambda_to_retry(
    bulk_scene, monkeypatch
):
    clients = install(monkeypatch)
    bulk_cancel.handler(bulk_event({"projectIds": ["nothing-here"]}), roomy_context())  # builds the clients

    def eventbridge_down(**_kwargs):
        raise client_error("InternalException", "PutEvents")

    clients["events"].intercept["put_events"] = eventbridge_down

    with pytest.raises(DependencyUnavailable):
        bulk_cancel.handler(bulk_event({"projectIds": ["p1"]}), roomy_context())
    assert bulk_scene.status("a1") == "processing"  # no event accepted: nothing cancelled


@pytest.mark.usefixtures("no_retry_delay")
def test_a_continuation_that_cannot_be_published_is_put_again_by_lambdas_retry_not_reported_failed(
    store, monkeypatch, reports, route
):
    continuations = route("BulkCancelFunction", "BulkCancelRequested")
    clients = install(monkeypatch)
    bulk_cancel.handler(bulk_event({"projectIds": ["nothing-here"]}), roomy_context())  # builds the clients
    reports()
    put_processing_messages(store, 150, ["p1"])
    events = clients["events"]

    def continuation_refused(**kwargs):
        if kwargs["Entries"][0]["DetailType"] == "Bulk Cancel Requested":
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure"}]}
        return events.real.put_events(**kwargs)

    events.intercept["put_events"] = continuation_refused
    request = bulk_event({"projectIds": ["p1"], "bulkId": "handoff-refused"})

    # Time for one page only: the second page must go to a continuation, which EventBridge refuses.
    with pytest.raises(DependencyUnavailable):
        bulk_cancel.handler(request, BudgetContext(remaining_ms=25_000, step_ms=10_000))
    assert [store.status(f"m{n:05d}") for n in range(150)].count("cancelled") == 100
    assert reports() == []
    del events.intercept["put_events"]

    retried = bulk_cancel.handler(request, roomy_context())  # Lambda's retry of the same event

    assert retried["messageIds"] == []
    (continuation,) = continuations.take()
    last = bulk_cancel.handler(continuation, roomy_context())
    assert len(last["messageIds"]) == 50
    (report,) = reports()
    assert (report["outcome"], report["cancelled"], report["selected"]) == ("finished", 150, 150)
