"""The EventBridge events the service consumes, as Powertools parser (pydantic) models.

Details are strict (unknown fields refused) where a wrong shape must change nothing: a bulk
detail that is not exactly one of the contract's shapes is rejected rather than guessed at.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from aws_lambda_powertools.utilities.parser import BaseModel, Field
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import ConfigDict, StrictInt, StringConstraints

from cancel_service.adapters.messages import PageKey
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


class ProjectsCursor(_Strict):
    """Where a bulk over projects resumes: the projects left (the first one is under way) and
    the page of that project's processing messages to start from."""

    project_ids: list[ProjectId] = Field(alias="projectIds", min_length=1)
    start_key: PageKey | None = Field(default=None, alias="startKey")


class OlderThanCursor(_Strict):
    """Where a bulk by age resumes: the cutoff fixed by its first invocation, and the next page."""

    cutoff: Timestamp
    start_key: PageKey | None = Field(default=None, alias="startKey")


class BulkByProjects(_Strict):
    project_ids: list[ProjectId] = Field(alias="projectIds", min_length=1)
    reason: Reason = BULK_REQUEST_REASON
    bulk_id: BulkId | None = Field(default=None, alias="bulkId")
    cursor: ProjectsCursor | None = None


class BulkByOwner(_Strict):
    owner_id: UserId = Field(alias="ownerId")
    reason: Reason = BULK_REQUEST_REASON
    bulk_id: BulkId | None = Field(default=None, alias="bulkId")
    cursor: ProjectsCursor | None = None


class BulkOlderThan(_Strict):
    older_than_seconds: StrictInt = Field(alias="olderThanSeconds", ge=MIN_OLDER_THAN_SECONDS)
    reason: Reason = BULK_REQUEST_REASON
    bulk_id: BulkId | None = Field(default=None, alias="bulkId")
    cursor: OlderThanCursor | None = None


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
