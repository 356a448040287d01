"""The age index: the processing messages by last update, a table this service keeps itself.

The messages table's stream tells it when a message enters or leaves `processing` (the app and
the agents write nothing new). One entry per processing message, keyed by its id, with a shard
(hash of the id, mod the shard count) and a position (`updatedAt#id`, at most the message's
`updatedAt`); the table's `byShardAndPosition` index spreads the writes over the shards. An
`updatedAt` change while processing writes nothing: the sweep moves a position forward when it
meets an entry whose message was updated since (lazily, at most once per sweep).

Readers query every shard and merge them oldest first, then read the messages themselves: only a
message still processing with exactly the entry's `updatedAt` is selected. An entry of a message
that moved on is deleted, one of a message updated since is moved, so the index heals whatever
an out-of-order backfill or a lost stream record left behind.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from cancel_service.adapters.messages import readable, to_message
from cancel_service.errors import DependencyUnavailable
from cancel_service.models import PROCESSING, AgePage, ProcessingMessage
from cancel_service.observability import logger, tracer

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

BY_SHARD_AND_POSITION = "byShardAndPosition"
# BatchGetItem reads at most 100 keys per call; unprocessed keys are read again this many times.
_BATCH_GET = 100
_UNPROCESSED_ATTEMPTS = 5
_MESSAGE_PROJECTION = "id, projectId, conversationId, executionArn, #status, updatedAt"
# DynamoDB's largest sort key value, in UTF-8 bytes: a longer position cannot be an index key.
MAX_POSITION_BYTES = 1024
# Begins the digest that stands for an id too long to be part of a position.
_LONG_ID_MARK = "~"


def shard_of(message_id: str, shards: int) -> int:
    """A stable shard for a message id (the same in every container and language run)."""
    digest = hashlib.blake2b(message_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def position_of(updated_at: str, message_id: str) -> str:
    """Sorts by `updatedAt` (ISO-8601 with milliseconds sorts as text), then by id: a total order,
    so one position says where a reading of every shard stopped. An id too long for a sort key
    (a table key may take 2,048 bytes) sorts by a digest of it instead."""
    position = f"{updated_at}#{message_id}"
    if len(position.encode()) <= MAX_POSITION_BYTES:
        return position
    return f"{updated_at}#{_LONG_ID_MARK}{hashlib.blake2b(message_id.encode(), digest_size=16).hexdigest()}"


@dataclass(frozen=True, slots=True)
class _Entry:
    message_id: str
    shard: int
    position: str


class AgeIndex:
    def __init__(
        self,
        table_name: str,
        messages_table_name: str,
        shards: int,
        client: DynamoDBClient,
        executor: Executor,
    ) -> None:
        self._table_name = table_name
        self._messages_table_name = messages_table_name
        self._shards = shards
        self._client = client
        self._executor = executor

    # --- kept from the stream -------------------------------------------------------------------

    @tracer.capture_method
    def processing(self, message_id: str, updated_at: str) -> bool:
        """The message is processing: an entry at `updatedAt` unless it has one (whose position,
        earlier or equal, the sweep moves forward when it meets it). False: its `updatedAt` is too
        long for a position to be a key (no write would ever take it), so it cannot be indexed."""
        position = position_of(updated_at, message_id)
        if len(position.encode()) > MAX_POSITION_BYTES:
            return False
        try:
            self._client.put_item(
                TableName=self._table_name,
                Item={
                    "id": {"S": message_id},
                    "shard": {"N": str(shard_of(message_id, self._shards))},
                    "position": {"S": position},
                },
                ConditionExpression="attribute_not_exists(id)",
            )
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise DependencyUnavailable("dynamodb") from error
        except BotoCoreError as error:
            raise DependencyUnavailable("dynamodb") from error
        return True

    @tracer.capture_method
    def not_processing(self, message_id: str) -> None:
        """The message left processing (or was deleted): no entry."""
        try:
            self._client.delete_item(TableName=self._table_name, Key={"id": {"S": message_id}})
        except (ClientError, BotoCoreError) as error:
            raise DependencyUnavailable("dynamodb") from error

    # --- read by the bulk by age and the stale sweep ----------------------------------------------

    @tracer.capture_method
    def stale_page(self, cutoff: str, after: str | None, limit: int) -> AgePage:
        """Up to `limit` messages processing with `updatedAt` before `cutoff`, oldest first,
        after position `after`. Every shard is read up to a share of the page; only entries up to
        the lowest last position of a shard that has more are taken, so none is passed over."""
        per_shard = max(4, 2 * -(-limit // self._shards))
        reads = list(
            self._executor.map(
                lambda shard: self._shard_page(shard, cutoff, after, per_shard), range(self._shards)
            )
        )
        horizons = [entries[-1].position for entries, more in reads if more]
        horizon = min(horizons) if horizons else None
        entries = sorted(
            (entry for shard_entries, _ in reads for entry in shard_entries),
            key=lambda entry: entry.position,
        )
        candidates = [entry for entry in entries if horizon is None or entry.position <= horizon][:limit]
        if not candidates:
            return AgePage((), None)
        last = candidates[-1].position
        selected, unreadable, moved_past_last = self._still_stale(candidates, cutoff, last)
        finished = horizon is None and len(candidates) == len(entries) and not moved_past_last
        return AgePage(selected, None if finished else last, unreadable)

    def _shard_page(
        self, shard: int, cutoff: str, after: str | None, limit: int
    ) -> tuple[list[_Entry], bool]:
        """A shard's entries after `after` and before `cutoff`, and whether it has more."""
        values: dict[str, AttributeValueTypeDef] = {":shard": {"N": str(shard)}, ":cutoff": {"S": cutoff}}
        if after is None:
            condition = "shard = :shard AND #position < :cutoff"
        else:  # BETWEEN includes `after` itself: skipped below
            condition = "shard = :shard AND #position BETWEEN :after AND :cutoff"
            values[":after"] = {"S": after}
        try:
            response = self._client.query(
                TableName=self._table_name,
                IndexName=BY_SHARD_AND_POSITION,
                KeyConditionExpression=condition,
                ExpressionAttributeNames={"#position": "position"},
                ExpressionAttributeValues=values,
                Limit=limit + (after is not None),
            )
        except (ClientError, BotoCoreError) as error:
            raise DependencyUnavailable("dynamodb") from error
        entries = [
            _Entry(item["id"]["S"], shard, item["position"]["S"])
            for item in response.get("Items", [])
            if item["position"]["S"] != after
        ]
        return entries, "LastEvaluatedKey" in response and bool(entries)

    def _still_stale(
        self, entries: list[_Entry], cutoff: str, last: str
    ) -> tuple[tuple[ProcessingMessage, ...], tuple[str, ...], bool]:
        """The entries' messages that are still processing with the entry's `updatedAt`, and those
        updated since whose new position is still inside this page (up to `last`), by position;
        the ids of those that are not readable messages (left in the index, never cancelled); and
        whether one moved past `last` but is still stale (a later page reads it there).
        Entries of messages that moved on are deleted; those of messages updated since, moved."""
        items = self._messages(entry.message_id for entry in entries)
        stale: list[tuple[str, dict[str, AttributeValueTypeDef]]] = []
        moved_past_last = False
        for entry in entries:
            item = items.get(entry.message_id)
            updated_at = item.get("updatedAt", {}).get("S") if item else None
            if item is None or item.get("status", {}).get("S") != PROCESSING or updated_at is None:
                self._forget(entry)
            elif position_of(updated_at, entry.message_id) == entry.position:
                stale.append((entry.position, item))
            else:  # updated since the entry was written: its position follows
                moved = position_of(updated_at, entry.message_id)
                self._move(entry, moved)
                if moved <= last:
                    stale.append((moved, item))
                elif moved < cutoff:
                    moved_past_last = True
        stale.sort(key=lambda pair: pair[0])
        ordered = tuple(to_message(item) for _, item in stale if readable(item))
        unreadable = [item["id"]["S"] for _, item in stale if not readable(item)]
        if unreadable:
            logger.warning("unreadable messages skipped", extra={"message_ids": tuple(unreadable)})
        return ordered, tuple(unreadable), moved_past_last

    def _messages(self, message_ids: Iterator[str]) -> dict[str, dict[str, AttributeValueTypeDef]]:
        """The messages themselves, read consistently (BatchGetItem, unprocessed keys again)."""
        ids = list(dict.fromkeys(message_ids))
        found: dict[str, dict[str, AttributeValueTypeDef]] = {}
        for first in range(0, len(ids), _BATCH_GET):
            request: dict[str, Any] = {
                self._messages_table_name: {
                    "Keys": [{"id": {"S": message_id}} for message_id in ids[first : first + _BATCH_GET]],
                    "ConsistentRead": True,
                    "ProjectionExpression": _MESSAGE_PROJECTION,
                    "ExpressionAttributeNames": {"#status": "status"},
                }
            }
            # botocore retries a throttled call, not the keys a call left unprocessed.
            for attempt in range(_UNPROCESSED_ATTEMPTS):
                try:
                    response = self._client.batch_get_item(RequestItems=request)
                except (ClientError, BotoCoreError) as error:
                    raise DependencyUnavailable("dynamodb") from error
                for item in response.get("Responses", {}).get(self._messages_table_name, []):
                    found[item["id"]["S"]] = item
                request = dict(response.get("UnprocessedKeys") or {})
                if not request:
                    break
                time.sleep(0.05 * 2**attempt)
            else:
                raise DependencyUnavailable("dynamodb")
        return found

    def _forget(self, entry: _Entry) -> None:
        self._repair(entry, "delete", None)

    def _move(self, entry: _Entry, position: str) -> None:
        self._repair(entry, "update", position)

    def _repair(self, entry: _Entry, kind: str, moved: str | None) -> None:
        """Delete or move one entry, only if it is still where it was read (the stream may have
        changed it since); a repair that fails is left to the next reading."""
        request: dict[str, Any] = {
            "TableName": self._table_name,
            "Key": {"id": {"S": entry.message_id}},
            "ConditionExpression": "#position = :read",
            "ExpressionAttributeNames": {"#position": "position"},
            "ExpressionAttributeValues": {":read": {"S": entry.position}},
        }
        try:
            if moved is None:
                self._client.delete_item(**request)
            else:
                request["ExpressionAttributeValues"][":moved"] = {"S": moved}
                self._client.update_item(UpdateExpression="SET #position = :moved", **request)
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                logger.warning(
                    "age index repair failed", extra={"message_id": entry.message_id, "repair": kind}
                )
        except BotoCoreError:
            logger.warning("age index repair failed", extra={"message_id": entry.message_id, "repair": kind})


def _code(error: ClientError) -> str | None:
    return error.response.get("Error", {}).get("Code")
