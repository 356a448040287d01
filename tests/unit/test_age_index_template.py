"""The age index in the template: the messages table gains a stream and loses its status index
without being replaced; the stream feeds the age index's function, through its filter."""

from __future__ import annotations

import json
from typing import Any

from moto.events.models import EventPattern

from support.cfn import resource

# The messages table's indexes as the previous release deployed them.
PREVIOUS_INDEXES = {"byProjectAndStatus", "byStatusAndUpdatedAt", "byExecutionArn"}


def messages_table(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]["MessagesTable"]


def test_the_messages_table_is_updated_in_place_never_replaced(template):
    table = messages_table(template)
    properties = table["Properties"]
    # What CloudFormation replaces a table for: its name, its key schema, local indexes.
    assert "TableName" not in properties
    assert properties["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert "LocalSecondaryIndexes" not in properties
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"
    # One global index removed, none added: CloudFormation changes one per update, in place.
    indexes = {index["IndexName"] for index in properties["GlobalSecondaryIndexes"]}
    assert PREVIOUS_INDEXES - indexes == {"byStatusAndUpdatedAt"}
    assert indexes <= PREVIOUS_INDEXES
    # Attribute definitions only for the keys that remain (CloudFormation refuses unused ones).
    keys = {key["AttributeName"] for key in properties["KeySchema"]} | {
        key["AttributeName"] for index in properties["GlobalSecondaryIndexes"] for key in index["KeySchema"]
    }
    assert {attribute["AttributeName"] for attribute in properties["AttributeDefinitions"]} == keys


def test_no_index_of_the_messages_table_is_keyed_by_status_alone(template):
    for index in messages_table(template)["Properties"]["GlobalSecondaryIndexes"]:
        hash_key = next(key["AttributeName"] for key in index["KeySchema"] if key["KeyType"] == "HASH")
        assert hash_key != "status", index["IndexName"]


def test_the_stream_carries_both_images_to_the_age_index_function(cfn):
    stream = messages_table(cfn)["Properties"]["StreamSpecification"]
    assert stream == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    mapping = resource(cfn, "AgeIndexFunctionMessageChanged")
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["MessagesTable", "StreamArn"]}
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["MaximumRetryAttempts"] == -1  # no record skipped while the stream keeps it


def _matches(cfn: dict[str, Any], record: dict[str, Any]) -> bool:
    filters = resource(cfn, "AgeIndexFunctionMessageChanged")["FilterCriteria"]["Filters"]
    return any(EventPattern.load(f["Pattern"]).matches_event(record) for f in filters)  # type: ignore[arg-type]


def _record(old: str | None, new: str | None) -> dict[str, Any]:
    images: dict[str, Any] = {}
    if old:
        images["OldImage"] = {"status": {"S": old}}
    if new:
        images["NewImage"] = {"status": {"S": new}}
    return json.loads(json.dumps({"eventName": "MODIFY", "dynamodb": images}))


def test_the_filter_passes_changes_into_inside_and_out_of_processing_only(cfn):
    assert _matches(cfn, _record(None, "processing"))
    assert _matches(cfn, _record("pending", "processing"))
    assert _matches(cfn, _record("processing", "processing"))
    assert _matches(cfn, _record("processing", "completed"))
    assert _matches(cfn, _record("processing", None))  # deleted while processing
    assert not _matches(cfn, _record(None, "pending"))
    assert not _matches(cfn, _record("completed", "completed"))
    assert not _matches(cfn, _record("cancelled", None))


def test_the_age_index_table_spreads_its_entries_over_shards(template):
    properties = template["Resources"]["AgeIndexTable"]["Properties"]
    assert properties["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    [index] = properties["GlobalSecondaryIndexes"]
    assert index["KeySchema"] == [
        {"AttributeName": "shard", "KeyType": "HASH"},
        {"AttributeName": "position", "KeyType": "RANGE"},
    ]
    assert template["Parameters"]["AgeIndexShards"]["Default"] >= 1


def test_an_age_index_that_falls_behind_is_alarmed(cfn):
    alarm = resource(cfn, "AgeIndexLagAlarm")
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", "IteratorAge")
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "AgeIndexFunction"}}]
    # Well inside the stream's 24 hours, after which a record is gone.
    assert alarm["Threshold"] * alarm["EvaluationPeriods"] < 24 * 3600 * 1000
