"""The EventBridge events the service consumes, as Powertools parser (pydantic) models.

Details are strict (unknown fields refused) where a wrong shape must change nothing: a bulk
detail that is not exactly one of the contract's shapes is rejected rather than guessed at.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from aws_lambda_powertools.utilities.parser import BaseModel, Field
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import ConfigDict, NonNegativeInt, StrictBool, StrictInt, StringConstraints, model_validator

from cancel_service.adapters.messages import PROCESSING, PageKey
from cancel_service.models import PROJECT_ID_PATTERN

BULK_REQUEST_REASON = "bulk_request"
# Minimum age of a bulk by age: anything younger is still being worked on, not stuck.
MIN_OLDER_THAN_SECONDS = 60

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


# --- Bulk Cancel Requested ---------------------------------------------------------------------------
#
# A position (`cursor`) says where a continuation resumes. It is honoured only on the service's own
# continuations, and only where it narrows the selection it continues: the models check what a
# position says of itself (a page key of the right index, inside the selection's first project or
# before its cutoff); bulk_selection.py checks it against the selection and the clock.


class _StringAttribute(_Strict):
    s: str = Field(alias="S", min_length=1, max_length=1024)


class ProjectPageKey(_Strict):
    """Where a page of a project's processing messages starts (a key of `byProjectAndStatus`)."""

    id: _StringAttribute
    project_id: _StringAttribute = Field(alias="projectId")
    status: _StringAttribute

    @model_validator(mode="after")
    def _processing_only(self) -> ProjectPageKey:
        if self.status.s != PROCESSING:
            raise ValueError("a page key reads processing messages only")
        return self


def page_key(key: ProjectPageKey | None) -> PageKey | None:
    """The key as DynamoDB's ExclusiveStartKey."""
    return None if key is None else key.model_dump(by_alias=True)


class BulkCounts(_Strict):
    """Running totals of a bulk, carried by its continuations to its report."""

    selected: NonNegativeInt = 0
    cancelled: NonNegativeInt = 0
    already_finished: NonNegativeInt = Field(default=0, alias="alreadyFinished")
    failed: NonNegativeInt = 0
    invocations: NonNegativeInt = 0


class BulkProgress(BulkCounts):
    """Where a bulk stands: its totals, when it started and what it selects (bounded in size)."""

    started_at: Timestamp = Field(alias="startedAt")
    selector: dict[str, Any]


class _Position(_Strict):
    progress: BulkProgress


class ProjectsPosition(_Position):
    """A bulk over projects resumes with its first project, at this page (None: its first)."""

    start_key: ProjectPageKey | None = Field(default=None, alias="startKey")


class OwnerPosition(_Position):
    """A bulk by owner resumes with this project, at this page, then the owner's projects after
    it in the owner index."""

    project_id: ProjectId = Field(alias="projectId")
    start_key: ProjectPageKey | None = Field(default=None, alias="startKey")

    @model_validator(mode="after")
    def _key_in_project(self) -> OwnerPosition:
        _check_key_in_project(self.start_key, self.project_id)
        return self


class AgePosition(_Position):
    """A bulk by age resumes with the cutoff its first invocation fixed, after this position of
    the age index (`updatedAt#id`, the last one it read: None, from the oldest)."""

    cutoff: Timestamp
    after: str | None = Field(default=None, min_length=1, max_length=1200)

    @model_validator(mode="after")
    def _after_before_cutoff(self) -> AgePosition:
        if self.after is not None and not self.after < self.cutoff:
            raise ValueError("the position is not before the cutoff")
        return self


def _check_key_in_project(key: ProjectPageKey | None, project_id: str) -> None:
    if key is not None and key.project_id.s != project_id:
        raise ValueError("the page key belongs to another project")


class _BulkSelection(_Strict):
    reason: Reason = BULK_REQUEST_REASON
    bulk_id: BulkId | None = Field(default=None, alias="bulkId")
    # Count what would be cancelled; change nothing.
    dry_run: StrictBool = Field(default=False, alias="dryRun")
    # Stop once this many messages were cancelled (counted, for a dry run).
    max_messages: StrictInt | None = Field(default=None, alias="maxMessages", ge=1)


class BulkByProjects(_BulkSelection):
    project_ids: list[ProjectId] = Field(alias="projectIds", min_length=1)
    cursor: ProjectsPosition | None = None

    @model_validator(mode="after")
    def _key_in_first_project(self) -> BulkByProjects:
        if self.cursor is not None:
            _check_key_in_project(self.cursor.start_key, self.project_ids[0])
        return self


class BulkByOwner(_BulkSelection):
    owner_id: UserId = Field(alias="ownerId")
    cursor: OwnerPosition | None = None


class BulkOlderThan(_BulkSelection):
    older_than_seconds: StrictInt = Field(alias="olderThanSeconds", ge=MIN_OLDER_THAN_SECONDS)
    cursor: AgePosition | None = None


BulkSelection = BulkByProjects | BulkByOwner | BulkOlderThan


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
