"""Bulk state table: two items per `bulkId`, written only by conditional writes.

The request item (key `<bulkId>#request`, never changed) holds the request as sent (up to
EventBridge's 256 KB), so that the state item, written after every page, stays small. The state
item holds a digest of the request (to tell another request with the same id), the link of the
chain of invocations the bulk is at, where its next page starts, its totals, the page whose
cancels are in flight, whether its latest continuation went out, and its report once it ended.
An invocation works on a bulk only while it holds the item's lease (until its own deadline):
every later write is conditioned on it, and writes absolute values, so that the SDK's retry of a
write whose answer was lost writes the same thing again.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import TypeAdapter

from cancel_service.adapters.dynamodb import Item, update_if
from cancel_service.errors import BulkIdTaken, LeaseLost, StateUnavailable
from cancel_service.event_models import BulkProgress, BulkReport, BulkState, Position
from cancel_service.observability import tracer

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, UpdateItemInputTypeDef

_POSITION: TypeAdapter[Position] = TypeAdapter(Position)
_CONDITION_FAILED = "ConditionalCheckFailedException"


def _request_key(bulk_id: str) -> str:
    # "#" is in no bulkId: a request item never takes a bulk's key.
    return f"{bulk_id}#request"


def _json(value: Any) -> AttributeValueTypeDef:
    return {"S": json.dumps(value, separators=(",", ":"), sort_keys=True)}


def _number(value: int) -> AttributeValueTypeDef:
    return {"N": str(value)}


def _position(position: Position | None) -> AttributeValueTypeDef:
    # Every field, None included: the fields of each kind of position tell them apart when read.
    return {"NULL": True} if position is None else {"S": position.model_dump_json(by_alias=True)}


def _progress_values(progress: BulkProgress) -> dict[str, AttributeValueTypeDef]:
    return {
        ":selected": _number(progress.selected),
        ":cancelled": _number(progress.cancelled),
        ":alreadyFinished": _number(progress.already_finished),
        ":failed": _number(progress.failed),
    }


_SET_PROGRESS = (
    "selected = :selected, cancelled = :cancelled, alreadyFinished = :alreadyFinished, failed = :failed"
)


def _state(item: Item) -> BulkState:
    def text(name: str) -> str | None:
        return item[name].get("S") if name in item else None

    def number(name: str) -> int:
        return int(item[name]["N"]) if name in item else 0

    position_text = text("position")
    report_text = text("report")
    return BulkState(
        bulk_id=item["bulkId"]["S"],
        digest=item["digest"]["S"],
        selector=json.loads(item["selector"]["S"]),
        started_at=item["startedAt"]["S"],
        link=number("link"),
        position=None if position_text is None else _POSITION.validate_json(position_text),
        progress=BulkProgress(
            selected=number("selected"),
            cancelled=number("cancelled"),
            alreadyFinished=number("alreadyFinished"),
            failed=number("failed"),
            invocations=number("invocations"),
        ),
        pending=tuple(value["S"] for value in item.get("pending", {}).get("L", [])),
        handed_off=item.get("handedOff", {}).get("BOOL", True),
        report=None if report_text is None else BulkReport.model_validate_json(report_text),
        reported=item.get("reported", {}).get("BOOL", False),
        lease=text("lease"),
        lease_until=text("leaseUntil"),
    )


class BulkStateTable:
    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self._table_name = table_name
        self._client = client

    @tracer.capture_method
    def get(self, bulk_id: str) -> BulkState | None:
        try:
            item = self._client.get_item(
                TableName=self._table_name, Key={"bulkId": {"S": bulk_id}}, ConsistentRead=True
            ).get("Item")
        except (ClientError, BotoCoreError) as error:
            raise StateUnavailable from error
        return None if item is None else _state(item)

    @tracer.capture_method
    def request(self, bulk_id: str) -> dict[str, Any]:
        """The bulk's request as sent (its id and position left out)."""
        try:
            item = self._client.get_item(
                TableName=self._table_name, Key={"bulkId": {"S": _request_key(bulk_id)}}, ConsistentRead=True
            ).get("Item")
        except (ClientError, BotoCoreError) as error:
            raise StateUnavailable from error
        if item is None:
            raise StateUnavailable  # written before the state item: a read that missed it
        request: dict[str, Any] = json.loads(item["request"]["S"])
        return request

    @tracer.capture_method
    def create(self, state: BulkState, request: dict[str, Any], expires_at: int) -> BulkState:
        """The new bulk's items, unless the id is taken: then the state that took it (raises
        BulkIdTaken when another request holds the id and its state is not written yet)."""
        try:
            self._client.put_item(
                TableName=self._table_name,
                Item={
                    "bulkId": {"S": _request_key(state.bulk_id)},
                    "request": _json(request),
                    "digest": {"S": state.digest},
                    "expiresAt": _number(expires_at),
                },
                ConditionExpression="attribute_not_exists(bulkId) OR digest = :digest",
                ExpressionAttributeValues={":digest": {"S": state.digest}},
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != _CONDITION_FAILED:
                raise StateUnavailable from error
            taken = self.get(state.bulk_id)
            if taken is None:
                raise BulkIdTaken(state.bulk_id) from None
            return taken
        except BotoCoreError as error:
            raise StateUnavailable from error
        item: Item = {
            "bulkId": {"S": state.bulk_id},
            "digest": {"S": state.digest},
            "selector": _json(state.selector),
            "startedAt": {"S": state.started_at},
            "link": _number(state.link),
            "position": _position(state.position),
            "expiresAt": _number(expires_at),
        }
        try:
            self._client.put_item(
                TableName=self._table_name,
                Item=item,
                ConditionExpression="attribute_not_exists(bulkId)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != _CONDITION_FAILED:
                raise StateUnavailable from error
            # Taken: by another bulk, or by this very write whose answer was lost.
            return _state(cast("Item", error.response.get("Item") or item))
        except BotoCoreError as error:
            raise StateUnavailable from error
        return state

    def claim(self, state: BulkState, token: str, until: str, now: str) -> bool:
        """Take the lease for the bulk's current link, unless it ended, moved on, or another
        invocation holds a lease that has not run out."""
        return self._update(
            state.bulk_id,
            "SET lease = :token, leaseUntil = :until, invocations = :invocations",
            "#link = :link AND attribute_not_exists(report)"
            " AND (attribute_not_exists(lease) OR leaseUntil < :now)",
            {
                ":token": {"S": token},
                ":until": {"S": until},
                ":invocations": _number(state.progress.invocations + 1),
                ":link": _number(state.link),
                ":now": {"S": now},
            },
            applied_if=lambda old: old.get("lease", {}).get("S") == token,
        )

    def save(
        self,
        bulk_id: str,
        token: str,
        position: Position | None,
        progress: BulkProgress,
        pending: tuple[str, ...],
    ) -> None:
        """Record the position reached, the totals and the page in flight."""
        update = f"SET #position = :position, {_SET_PROGRESS}"
        values: dict[str, AttributeValueTypeDef] = {
            ":position": _position(position),
            **_progress_values(progress),
            ":token": {"S": token},
        }
        if pending:
            update += ", pending = :pending"
            values[":pending"] = {"L": [{"S": message_id} for message_id in pending]}
        else:
            update += " REMOVE pending"
        self._held(bulk_id, update, "lease = :token", values)

    def hand_off(
        self, bulk_id: str, token: str, link: int, position: Position, progress: BulkProgress
    ) -> None:
        """Move the bulk to its next link, whose continuation is yet to go out; let go of the lease."""
        self._held(
            bulk_id,
            f"SET #link = :link, #position = :position, handedOff = :false, {_SET_PROGRESS}"
            " REMOVE lease, pending",
            "lease = :token",
            {
                ":link": _number(link),
                ":position": _position(position),
                ":false": {"BOOL": False},
                ":token": {"S": token},
                **_progress_values(progress),
            },
            applied_if=lambda old: old.get("link", {}).get("N") == str(link),
        )

    def end(self, bulk_id: str, token: str, report: BulkReport) -> None:
        """Record the bulk's report (and its totals): from now on it is the bulk's only report."""
        self._held(
            bulk_id,
            f"SET report = :report, {_SET_PROGRESS} REMOVE lease, pending",
            "lease = :token AND attribute_not_exists(report)",
            {
                ":report": {"S": report.model_dump_json(by_alias=True, exclude_none=True)},
                ":token": {"S": token},
                **_progress_values(report),
            },
            applied_if=lambda old: "report" in old,
        )

    def mark_handed_off(self, bulk_id: str, link: int) -> None:
        self._update(
            bulk_id,
            "SET handedOff = :true",
            "#link = :link",
            {":true": {"BOOL": True}, ":link": _number(link)},
        )

    def mark_reported(self, bulk_id: str) -> None:
        self._update(bulk_id, "SET reported = :true", "attribute_exists(report)", {":true": {"BOOL": True}})

    def release(self, bulk_id: str, token: str) -> None:
        """Let go of the lease (an invocation that fails), so that Lambda's retry goes on at once."""
        self._update(bulk_id, "REMOVE lease", "lease = :token", {":token": {"S": token}})

    def _held(
        self,
        bulk_id: str,
        update: str,
        condition: str,
        values: dict[str, AttributeValueTypeDef],
        applied_if: Any = None,
    ) -> None:
        token = values[":token"]["S"]
        if not self._update(
            bulk_id,
            update,
            condition,
            values,
            applied_if=applied_if or (lambda old: old.get("lease", {}).get("S") == token),
        ):
            raise LeaseLost(bulk_id)

    @tracer.capture_method
    def _update(
        self,
        bulk_id: str,
        update: str,
        condition: str,
        values: dict[str, AttributeValueTypeDef],
        applied_if: Any = None,
    ) -> bool:
        """A conditional update; False when its condition failed, unless `applied_if(old item)`
        says this very update applied before (the SDK retried it after a lost answer)."""
        names = {name: name[1:] for name in ("#link", "#position") if name in update or name in condition}
        request: UpdateItemInputTypeDef = {
            "TableName": self._table_name,
            "Key": {"bulkId": {"S": bulk_id}},
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
        if names:
            request["ExpressionAttributeNames"] = names
        written = update_if(self._client, request, StateUnavailable)
        if written.applied:
            return True
        return applied_if is not None and bool(written.item) and bool(applied_if(written.item))
