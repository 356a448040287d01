"""The EventBridge events the service consumes, as Powertools parser (pydantic) models, and a
bulk's records made of them (its progress, report and state).

Details are strict (unknown fields refused) where a wrong shape must change nothing: a bulk
detail that is not exactly one of the contract's shapes is rejected rather than guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from aws_lambda_powertools.utilities.parser import BaseModel, Field
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import ConfigDict, NonNegativeInt, StrictBool, StrictInt, StringConstraints, model_validator

from cancel_service.models import PROJECT_ID_PATTERN

BULK_REQUEST_REASON = "bulk_request"
# The bounds of a bulk by age: anything younger is still being worked on, not stuck; ten years
# is older than any message (and keeps the cutoff's arithmetic inside a datetime's range).
MIN_OLDER_THAN_SECONDS = 60
MAX_OLDER_THAN_SECONDS = 315_360_000
# How many of a bulk's project ids its report names (the count is always there).
REPORTED_PROJECT_IDS = 20

ProjectId = Annotated[str, StringConstraints(pattern=rf"^{PROJECT_ID_PATTERN}$")]
UserId = Annotated[str, StringConstraints(pattern=r"^user_[A-Za-z0-9]{1,64}$")]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=128)]
BulkId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Timestamp = Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")]
ExecutionArn = Annotated[
    str, StringConstraints(pattern=r"^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:execution:.+")
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --- A bulk's progress and report ---------------------------------------------------------------------
#
# One model of each, shared by the bulk function (which keeps them in its state table), the adapter
# that publishes them and the command line that reads them.

Outcome = Literal["finished", "capped", "failed"]


class BulkProgress(_Strict):
    """A bulk's running totals, as its state table holds them."""

    selected: NonNegativeInt = 0
    cancelled: NonNegativeInt = 0
    already_finished: NonNegativeInt = Field(default=0, alias="alreadyFinished")
    failed: NonNegativeInt = 0
    invocations: NonNegativeInt = 0

    def line(self) -> str:
        return (
            f"{self.cancelled}/{self.selected} cancelled, {self.already_finished} already finished, "
            f"{self.failed} failed, {self.invocations} invocation{'s' if self.invocations != 1 else ''}"
        )


class BulkReport(BulkProgress):
    """The detail of `Bulk Cancel Completed`: how a bulk ended, with its totals."""

    bulk_id: BulkId = Field(alias="bulkId")
    selector: dict[str, Any]
    dry_run: StrictBool = Field(alias="dryRun")
    outcome: Outcome
    started_at: Timestamp = Field(alias="startedAt")
    finished_at: Timestamp = Field(alias="finishedAt")
    error: str | None = None


# --- Bulk Cancel Requested ---------------------------------------------------------------------------
#
# A continuation names the link of its bulk's chain it is (`cursor`), with where that link resumes
# (plain data: the project and page key a page starts at, or the age cutoff) and the running totals
# for whoever watches the bus. Only the service's own continuations may carry one, and the function
# honours it only as the link its bulk's state table expects next: where the bulk resumes, and its
# totals, come from that table, never from the event.

# An ExclusiveStartKey: string attributes only (an id, as a table key, is at most 2,048 bytes).
PageKey = dict[str, dict[Literal["S"], Annotated[str, StringConstraints(min_length=1, max_length=2048)]]]


class _Cursor(_Strict):
    link: StrictInt = Field(ge=0)
    start_key: PageKey | None = Field(default=None, alias="startKey")
    progress: BulkProgress | None = None


class ProjectsPosition(_Cursor):
    """A bulk over projects resumes with its `index`-th project (in the request's order, duplicates
    left out), at this page (None: its first)."""

    index: NonNegativeInt = 0


class OwnerPosition(_Cursor):
    """A bulk by owner resumes with this project (None: the owner's first), at this page, then the
    owner's projects after it in the owner index."""

    project_id: ProjectId | None = Field(default=None, alias="projectId")


class AgePosition(_Cursor):
    """A bulk by age resumes with the cutoff its first invocation fixed, after this position of
    the age index (`updatedAt#id`, the last one it read: None, from the oldest). The age index has
    no page key: `startKey` stays empty."""

    cutoff: Timestamp
    after: str | None = Field(default=None, min_length=1, max_length=1200)

    @model_validator(mode="after")
    def _after_before_cutoff(self) -> AgePosition:
        if self.start_key is not None:
            raise ValueError("a position of the age index has no page key")
        if self.after is not None and not self.after < self.cutoff:
            raise ValueError("the position is not before the cutoff")
        return self


class _BulkSelection(_Strict):
    reason: Reason = BULK_REQUEST_REASON
    bulk_id: BulkId | None = Field(default=None, alias="bulkId")
    # Count what would be cancelled; change nothing.
    dry_run: StrictBool = Field(default=False, alias="dryRun")
    # Stop once this many messages were cancelled (counted, for a dry run).
    max_messages: StrictInt | None = Field(default=None, alias="maxMessages", ge=1)

    def request(self) -> dict[str, Any]:
        """The request as sent, without its id and position: what makes two requests one bulk."""
        return self.model_dump(by_alias=True, exclude_none=True, exclude={"bulk_id", "cursor"})


class BulkByProjects(_BulkSelection):
    project_ids: list[ProjectId] = Field(alias="projectIds", min_length=1)
    cursor: ProjectsPosition | None = None

    def distinct_project_ids(self) -> list[str]:
        return list(dict.fromkeys(self.project_ids))

    def selector(self) -> dict[str, Any]:
        """What the bulk selects, for its report (a long project list is named in part)."""
        ids = self.distinct_project_ids()
        return {"projectIds": ids[:REPORTED_PROJECT_IDS], "projectCount": len(ids)}


class BulkByOwner(_BulkSelection):
    owner_id: UserId = Field(alias="ownerId")
    cursor: OwnerPosition | None = None

    def selector(self) -> dict[str, Any]:
        return {"ownerId": self.owner_id}


class BulkOlderThan(_BulkSelection):
    older_than_seconds: StrictInt = Field(
        alias="olderThanSeconds", ge=MIN_OLDER_THAN_SECONDS, le=MAX_OLDER_THAN_SECONDS
    )
    cursor: AgePosition | None = None

    def selector(self) -> dict[str, Any]:
        return {"olderThanSeconds": self.older_than_seconds}


BulkSelection = BulkByProjects | BulkByOwner | BulkOlderThan
Position = ProjectsPosition | OwnerPosition | AgePosition


@dataclass(frozen=True, slots=True)
class BulkState:
    """A bulk as its state table holds it: the one record of where it is (never an event's)."""

    bulk_id: str
    digest: str  # of the request as sent, without its id and position
    selector: dict[str, Any]
    started_at: str
    link: int
    position: Position | None  # None: nothing of the selection is left
    progress: BulkProgress
    pending: tuple[str, ...]  # the page whose cancels are in flight
    handed_off: bool  # the continuation for `link` went out
    report: BulkReport | None
    reported: bool
    lease: str | None
    lease_until: str | None


class BulkCancelRequested(EventBridgeModel):
    detail: BulkSelection


# --- Message Cancel Requested (the stop target's input) -----------------------------------------------


class CancelRequestedDetail(BaseModel):
    message_id: str = Field(alias="messageId")
    execution_arn: ExecutionArn = Field(alias="executionArn")
    requested_by: str = Field(alias="requestedBy")
    reason: str


class MessageCancelRequested(EventBridgeModel):
    detail: CancelRequestedDetail


# --- Step Functions Execution Status Change (default bus) ---------------------------------------------

EndedStatus = Literal["FAILED", "TIMED_OUT", "ABORTED"]


class ExecutionStatusDetail(BaseModel):
    execution_arn: ExecutionArn = Field(alias="executionArn")
    status: EndedStatus
    # Epoch milliseconds; set on every ended execution.
    stop_date: int | None = Field(default=None, alias="stopDate")


class ExecutionStatusChanged(EventBridgeModel):
    detail: ExecutionStatusDetail

    @property
    def stopped_at(self) -> datetime:
        """When the execution ended: its stopDate, else the event's time."""
        if self.detail.stop_date is None:
            return self.time
        return datetime.fromtimestamp(self.detail.stop_date / 1000, tz=self.time.tzinfo)
