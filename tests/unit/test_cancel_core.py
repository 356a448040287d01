"""The cancel rules of the core (cancel.py), against in-memory stand-ins on a deterministic
executor: who may stop a project, what is touched, when a message counts as cancelled, and what
is kept when a dependency fails part-way."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from cancel_service.core.cancel import CancelResult, CancelService
from cancel_service.errors import DependencyUnavailable, ProjectNotFound
from cancel_service.models import USER_REQUEST_REASON, Caller, CancelRequest, Project
from support.constants import ORG, OTHER_USER, OWNER, PROJECT
from support.in_memory import InMemoryMessages, InMemoryProjects, RecordingEvents, ScriptedCalls

REQUEST_ID = "req_1"
OWNER_CALLER = Caller(OWNER, "sess_1")


@dataclass
class Core:
    projects: InMemoryProjects = field(default_factory=lambda: InMemoryProjects(Project(PROJECT, OWNER, ORG)))
    messages: InMemoryMessages = field(default_factory=lambda: InMemoryMessages(page_size=10))
    events: RecordingEvents = field(default_factory=RecordingEvents)
    calls: ScriptedCalls = field(default_factory=ScriptedCalls)

    @property
    def service(self) -> CancelService:
        return CancelService(self.projects, self.messages, self.events, self.calls)

    def stop(self, caller: Caller = OWNER_CALLER) -> CancelResult:
        return self.service.cancel_project_for(caller, PROJECT, REQUEST_ID)


@pytest.fixture
def core() -> Core:
    return Core()


def test_the_owner_cancels_every_processing_message_of_the_project(core: Core) -> None:
    ids = core.messages.add(23)
    core.messages.add(2, project_id="another_project", prefix="x")

    result = core.stop()

    assert result.cancelled
    assert list(result.cancelled_ids) == ids
    assert core.events.published_ids() == ids
    assert {core.messages.status(message_id) for message_id in ids} == {"cancelled"}
    assert {core.messages.status(message_id) for message_id in ("x023", "x024")} == {"processing"}


def test_each_event_carries_the_request_and_batches_hold_at_most_ten(core: Core) -> None:
    core.messages.add(23)

    core.stop()

    [request] = {request for _, request in core.events.published}
    assert (request.request_id, request.requested_by, request.reason) == (
        REQUEST_ID,
        OWNER,
        USER_REQUEST_REASON,
    )
    assert [len(call.message_ids) for call in core.calls.calls("publish_batch")] == [10, 10, 3]


def test_a_member_acting_in_the_projects_organization_may_stop_it(core: Core) -> None:
    ids = core.messages.add(3)

    assert core.stop(Caller(OTHER_USER, "sess_2", org_id=ORG)).cancelled_ids == tuple(ids)


@pytest.mark.parametrize(
    "caller",
    [Caller(OTHER_USER, "sess_2"), Caller(OTHER_USER, "sess_2", org_id="org_other")],
    ids=["stranger", "member of another organization"],
)
def test_a_caller_who_may_not_touch_the_project_changes_nothing(core: Core, caller: Caller) -> None:
    ids = core.messages.add(3)

    with pytest.raises(ProjectNotFound):
        core.stop(caller)

    assert core.events.published == []
    assert core.calls.calls("publish_batch") == core.calls.calls("cancel_one") == []
    assert {core.messages.status(message_id) for message_id in ids} == {"processing"}


def test_a_project_that_does_not_exist_is_not_found(core: Core) -> None:
    core.projects.projects.clear()

    with pytest.raises(ProjectNotFound):
        core.stop()


def test_a_project_without_processing_messages_cancels_nothing(core: Core) -> None:
    result = core.stop()

    assert not result.cancelled
    assert core.calls.calls("publish_batch") == []


def test_a_message_whose_event_was_refused_stays_processing_and_the_rest_is_kept(core: Core) -> None:
    ids = core.messages.add(12)
    core.events.rejecting = {ids[3]}

    with pytest.raises(DependencyUnavailable) as raised:
        core.stop()

    assert raised.value.dependency == "eventbridge"
    assert list(raised.value.cancelled_ids) == [message_id for message_id in ids if message_id != ids[3]]
    assert core.messages.status(ids[3]) == "processing"
    assert [call.message_ids[0] for call in core.calls.calls("cancel_one")] == list(
        raised.value.cancelled_ids
    )


def test_a_failed_write_is_reported_after_every_other_write(core: Core) -> None:
    ids = core.messages.add(12)
    core.messages.failing_writes = {ids[0]}

    with pytest.raises(DependencyUnavailable) as raised:
        core.stop()

    assert raised.value.dependency == "dynamodb"
    assert list(raised.value.cancelled_ids) == ids[1:]
    assert core.messages.status(ids[0]) == "processing"


def test_a_failed_page_keeps_what_the_pages_before_it_cancelled(core: Core) -> None:
    ids = core.messages.add(25)
    core.messages.failing_pages = {1}

    with pytest.raises(DependencyUnavailable) as raised:
        core.stop()

    assert raised.value.dependency == "dynamodb"
    assert list(raised.value.cancelled_ids) == ids[:10]
    assert {core.messages.status(message_id) for message_id in ids[10:]} == {"processing"}


def test_an_unreadable_project_is_a_dependency_failure_with_nothing_published(core: Core) -> None:
    core.messages.add(3)
    core.projects.unavailable = True

    with pytest.raises(DependencyUnavailable):
        core.stop()

    assert core.events.published == []


def test_a_message_finished_since_it_was_read_is_left_as_it_is_and_not_reported(core: Core) -> None:
    ids = core.messages.add(3)
    read = [entry.message for entry in core.messages.stored.values()]
    core.messages.stored[ids[1]].status = "completed"
    request = CancelRequest("bulk_1", "system:bulk", "older_than", "2026-11-24T12:00:00.000Z")

    result = core.service.cancel(read, request)

    assert result.cancelled_ids == (ids[0], ids[2])
    assert result.already_finished_ids == (ids[1],)
    assert core.messages.status(ids[1]) == "completed"
