"""The domain's small vocabulary: who asks, what is cancelled, and why."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import NamedTuple

USER_REQUEST_REASON = "user_request"
# What a project id may be, wherever one comes in (the HTTP body, a bulk event).
PROJECT_ID_PATTERN = r"[A-Za-z0-9_-]{1,128}"

# A message's statuses that this service reads or writes (the app writes the others).
PROCESSING = "processing"
CANCELLED = "cancelled"
FAILED = "failed"

# Where the next page of an index query starts (DynamoDB's ExclusiveStartKey): string key
# attributes only, so it travels as plain JSON inside a continuation event.
PageKey = dict[str, dict[str, str]]


class Caller(NamedTuple):
    """A signed-in Clerk user, as proven by a verified session token."""

    user_id: str
    session_id: str
    org_id: str | None = None


class Project(NamedTuple):
    id: str
    owner_id: str
    org_id: str | None = None

    def accessible_by(self, caller: Caller) -> bool:
        """Owners may cancel, and so may members acting in the project's organization."""
        if self.owner_id == caller.user_id:
            return True
        return self.org_id is not None and self.org_id == caller.org_id


class ProcessingMessage(NamedTuple):
    """A message that was `processing` when it was read (it may have finished since)."""

    id: str
    project_id: str
    conversation_id: str
    execution_arn: str | None = None


class MessagePage(NamedTuple):
    """One page of processing messages, and where the next page starts (None: this was the last)."""

    messages: tuple[ProcessingMessage, ...]
    next_key: PageKey | None
    # Ids of items that are not the contract's message (an attribute missing or out of range):
    # skipped, never cancelled, so that one bad item cannot stop every read after it.
    unreadable: tuple[str, ...] = ()


class AgePage(NamedTuple):
    """Messages still processing with no update since the cutoff, oldest first; `after` is where
    the next page starts (None: none is left)."""

    messages: tuple[ProcessingMessage, ...]
    after: str | None
    # Ids of stale entries whose message is not the contract's item: skipped, counted as failed.
    unreadable: tuple[str, ...] = ()


class ExecutionMessage(NamedTuple):
    """A message as read by its key or its agent execution, with its status when it was read."""

    message: ProcessingMessage
    status: str
    cancel_request_id: str | None = None


class WriteOutcome(Enum):
    """What became of one message's cancel write."""

    CANCELLED = "cancelled"
    ALREADY_FINISHED = "already_finished"
    FAILED = "failed"


class PublishedBatch(NamedTuple):
    """Which messages of one batch of cancel events were accepted, and which were not (after
    retries)."""

    accepted: tuple[ProcessingMessage, ...]
    rejected: tuple[ProcessingMessage, ...]


class CancelRequest(NamedTuple):
    """One cancel request: its id (the API Gateway request id, or a bulk's `bulkId`), who asked
    (a Clerk user id or `system:<trigger>`), why, and when.

    The id travels in every event (`requestId`) and is written on every message the request
    cancels (`cancelRequestId`), so a write whose answer was lost is still known as its own.
    """

    request_id: str
    requested_by: str
    reason: str
    requested_at: str


def utc_timestamp(moment: datetime | None = None) -> str:
    """ISO-8601 UTC with milliseconds, the format every timestamp of the tables uses."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
