"""The one creator of the template's tables, buses and queues in moto: used by the local stack,
by `sam-seed` and by the tests and benchmarks (which name the tables themselves), so that none of
them can drift from what is deployed."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from devstack.template import Template, resources_of_type

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sqs import SQSClient


def create_tables(client: DynamoDBClient, table_names: dict[str, str], template: dict[str, Any]) -> None:
    """Create every AWS::DynamoDB::Table of the template as written, named `table_names[logical id]`:
    its keys, billing mode, indexes and stream (what DynamoDB's answers depend on)."""
    for logical_id, resource in resources_of_type(template, "AWS::DynamoDB::Table").items():
        properties = resource["Properties"]
        request: dict[str, Any] = {
            "TableName": table_names[logical_id],
            "AttributeDefinitions": properties["AttributeDefinitions"],
            "KeySchema": properties["KeySchema"],
            "BillingMode": properties["BillingMode"],
        }
        if "GlobalSecondaryIndexes" in properties:
            request["GlobalSecondaryIndexes"] = properties["GlobalSecondaryIndexes"]
        if "StreamSpecification" in properties:  # CloudFormation's form: a view type means enabled
            request["StreamSpecification"] = {"StreamEnabled": True, **properties["StreamSpecification"]}
        client.create_table(**request)


def create_bus(client: EventBridgeClient, name: str) -> None:
    """Create an event bus unless it exists (`sam-seed` runs again on the same moto)."""
    try:
        client.create_event_bus(Name=name)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceAlreadyExistsException":
            raise


def provision(
    template: Template, dynamodb: DynamoDBClient, events: EventBridgeClient, sqs: SQSClient
) -> None:
    """Every table, bus and queue of the template, under its local physical name."""
    tables = template.of_type("AWS::DynamoDB::Table")
    create_tables(
        dynamodb, {logical_id: template.physical_name(logical_id) for logical_id in tables}, template.raw
    )
    for logical_id in template.of_type("AWS::Events::EventBus"):
        create_bus(events, template.physical_name(logical_id))
    queues = template.of_type("AWS::SQS::Queue")
    # Dead-letter queues first: a redrive policy names a queue that must exist.
    for logical_id in sorted(queues, key=lambda q: "RedrivePolicy" in (queues[q].get("Properties") or {})):
        properties = template.resolve(queues[logical_id].get("Properties") or {})
        attributes = {
            name: _queue_attribute(value)
            for name, value in properties.items()
            if name not in ("QueueName", "Tags")
        }
        sqs.create_queue(QueueName=template.physical_name(logical_id), Attributes=attributes)


def _queue_attribute(value: Any) -> str:
    """SQS attributes are strings: a redrive policy as JSON, booleans as `true`/`false`."""
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def record_stack(cloudformation: Any, template: Template, outputs: dict[str, str]) -> None:
    """A stack of the template's name in moto's CloudFormation that answers DescribeStacks as the
    deployed one does: the parameters with their values and the template's Outputs, resolved to
    the local resources (`outputs` gives those only the stack knows, e.g. the API's URL). It
    holds no resource of its own: the resources are created above, from the template."""
    declared = template.raw.get("Outputs") or {}
    values = {key: outputs.get(key) or str(template.resolve(spec["Value"])) for key, spec in declared.items()}
    body = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": {name: {"Type": "String"} for name in template.parameters},
        # A template needs a resource; this one is never created (its condition never holds).
        "Conditions": {"Never": {"Fn::Equals": ["local", "deployed"]}},
        "Resources": {
            "Placeholder": {"Type": "AWS::CloudFormation::WaitConditionHandle", "Condition": "Never"}
        },
        "Outputs": {key: {"Value": value} for key, value in values.items()},
    }
    cloudformation.create_stack(
        StackName=template.stack_name,
        TemplateBody=json.dumps(body),
        Parameters=[
            {"ParameterKey": name, "ParameterValue": value} for name, value in template.parameters.items()
        ],
    )
