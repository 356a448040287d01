"""DynamoDB's conditional update, as the messages table and the bulk state table write."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple, cast

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, UpdateItemInputTypeDef

Item = dict[str, "AttributeValueTypeDef"]


class ConditionalUpdate(NamedTuple):
    """A conditional update's outcome: the item after it when it applied (as ReturnValues asked),
    the item as it was when its condition failed."""

    applied: bool
    item: Item


def update_if(
    client: DynamoDBClient, request: UpdateItemInputTypeDef, unavailable: Callable[[], Exception]
) -> ConditionalUpdate:
    """UpdateItem under its ConditionExpression. A failed condition is an outcome, not an error:
    DynamoDB returns the item as it was, so the caller can tell an item that moved on from one
    its own earlier attempt already moved (an SDK retry of a write whose answer was lost). Any
    other failure raises `unavailable()`, from the botocore error."""
    asked: UpdateItemInputTypeDef = {**request, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
    try:
        response = client.update_item(**asked)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return ConditionalUpdate(applied=False, item=cast("Item", error.response.get("Item") or {}))
        raise unavailable() from error
    except BotoCoreError as error:
        raise unavailable() from error
    return ConditionalUpdate(applied=True, item=response.get("Attributes", {}))
