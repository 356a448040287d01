"""Read template.yaml and create its tables (and more) in moto, so tests and the local stack
cannot drift from what is deployed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "template.yaml"


class _CloudFormationLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short forms (!Ref, !Sub, !GetAtt ...) kept as their long forms."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {"Ref": value} if suffix == "Ref" else {f"Fn::{suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with path.open() as stream:
        template: dict[str, Any] = yaml.load(stream, Loader=_CloudFormationLoader)  # noqa: S506 - SafeLoader subclass
    return template


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }


def create_tables(client: DynamoDBClient, table_names: dict[str, str], template: dict[str, Any]) -> None:
    """Create every AWS::DynamoDB::Table of the template, named by `table_names[logical id]`."""
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
        client.create_table(**request)
