"""Only the service speaks as the service: the bus's resource policy denies PutEvents of the
service's sources (cancel events, a bulk's continuations and reports) to every principal but the
roles of the functions whose IAM policy publishes them."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.template import resources_of_type
from support.cfn import FUNCTIONS, statements

SERVICE_SOURCES = ("app.messages", "app.messages.bulk")
ANOTHER_PRINCIPAL = "arn:aws:iam::123456789012:role/operator-tool"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def bus_denials(cfn: dict[str, Any]) -> list[dict[str, Any]]:
    policies = resources_of_type(cfn, "AWS::Events::EventBusPolicy").values()
    found = [p["Properties"] for p in policies if p["Properties"]["EventBusName"] == {"Ref": "CancelBus"}]
    return [p["Statement"] for p in found if p["Statement"]["Effect"] == "Deny"]


def denied(cfn: dict[str, Any], principal: Any, source: str) -> bool:
    """Whether the bus's policy denies `principal` (a role's ARN, or a template reference to one)
    a PutEvents of `source` (EventBridge's `events:source` condition key)."""
    for statement in bus_denials(cfn):
        assert statement["Principal"] == "*"
        assert statement["Resource"] == {"Fn::GetAtt": ["CancelBus", "Arn"]}
        if "events:PutEvents" not in _as_list(statement["Action"]):
            continue
        condition = statement["Condition"]
        assert set(condition) == {"StringEquals", "ArnNotEquals"}
        sources = _as_list(condition["StringEquals"]["events:source"])
        exempt = _as_list(condition["ArnNotEquals"]["aws:PrincipalArn"])
        if source in sources and principal not in exempt:
            return True
    return False


def published_sources(cfn: dict[str, Any], function: str) -> set[str]:
    """The sources a function's IAM policy lets it put on the bus."""
    return {
        source
        for statement in statements(cfn, function)
        if statement["Action"] == "events:PutEvents"
        for source in _as_list(statement["Condition"]["StringEquals"]["events:source"])
    }


def role(function: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [f"{function}Role", "Arn"]}


@pytest.mark.parametrize("source", SERVICE_SOURCES)
def test_the_services_sources_are_denied_to_any_other_principal(cfn, source):
    assert denied(cfn, ANOTHER_PRINCIPAL, source)


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_each_function_may_put_exactly_the_sources_its_iam_policy_publishes(cfn, function):
    allowed = published_sources(cfn, function)
    for source in SERVICE_SOURCES:
        assert denied(cfn, role(function), source) is (source not in allowed), (function, source)


def test_other_sources_stay_open_to_operators(cfn):
    assert not denied(cfn, ANOTHER_PRINCIPAL, "app.operator")
    assert not denied(cfn, ANOTHER_PRINCIPAL, "app.schedule")
