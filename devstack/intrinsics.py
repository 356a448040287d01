"""CloudFormation's rules, as a local deployment applies them: the physical names and ARNs of a
template's resources, its pseudo parameters, conditions and intrinsic functions.

Generic over resource types, so a table, bus, queue or function added to the template gets its
local name and ARN without edits here.
"""

from __future__ import annotations

import re
from typing import Any

from devstack.constants import ACCOUNT, REGION

NO_VALUE = object()  # AWS::NoValue: the property is removed

_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")
# The property that names a resource of each type; without it CloudFormation makes a name up.
_NAME_PROPERTIES = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::Events::EventBus": "Name",
    "AWS::SQS::Queue": "QueueName",
    "AWS::Serverless::Function": "FunctionName",
    "AWS::Events::Rule": "Name",
}
# Where a resource of each type lives in its ARN (arn:aws:<service>:<region>:<account>:<path>).
_ARN_PATHS: dict[str, tuple[str, str]] = {
    "AWS::DynamoDB::Table": ("dynamodb", "table/{}"),
    "AWS::Events::EventBus": ("events", "event-bus/{}"),
    "AWS::Events::Rule": ("events", "rule/{}"),
    "AWS::SQS::Queue": ("sqs", "{}"),
    "AWS::Serverless::Function": ("lambda", "function:{}"),
}


class TemplateError(ValueError):
    """The template uses something the local stack cannot resolve."""


class Resolver:
    """Resolves intrinsics to local physical names, given the template and parameter values."""

    def __init__(
        self,
        raw: dict[str, Any],
        parameters: dict[str, str],
        *,
        stack_name: str,
        aws_endpoint: str,
        require_all: bool,
    ) -> None:
        self.raw = raw
        self.resources: dict[str, dict[str, Any]] = raw.get("Resources", {})
        self.parameters = parameters
        self.stack_name = stack_name
        self.aws_endpoint = aws_endpoint.rstrip("/")
        self._require_all = require_all
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.resolve(self.raw.get("Conditions", {})[name]))
        return self._conditions[name]

    # --- names --------------------------------------------------------------------------------

    def physical_name(self, logical_id: str) -> str:
        resource = self.resources[logical_id]
        kind = resource["Type"]
        name_property = _NAME_PROPERTIES.get(kind)
        props = resource.get("Properties") or {}
        if name_property and props.get(name_property) is not None:
            return str(self.resolve(props[name_property]))
        return f"{self.stack_name}-{logical_id}"[: 80 if kind == "AWS::SQS::Queue" else 64]

    def arn(self, logical_id: str) -> str:
        kind = str(self.resources[logical_id]["Type"])
        service, path = _ARN_PATHS.get(kind, ("local", kind.split("::")[-1].lower() + "/{}"))
        return f"arn:aws:{service}:{REGION}:{ACCOUNT}:" + path.format(self.physical_name(logical_id))

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{self.stack_name}/local",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name not in self.resources:
            raise TemplateError(f"!Ref to unknown name {name}")
        kind = self.resources[name]["Type"]
        if kind == "AWS::SQS::Queue":
            return f"{self.aws_endpoint}/{ACCOUNT}/{self.physical_name(name)}"
        if kind in ("AWS::Serverless::HttpApi", "AWS::Serverless::Api"):
            return "local"
        return self.physical_name(name)

    def get_att(self, logical_id: str, attribute: str) -> str:
        if logical_id not in self.resources:
            # A resource SAM generates (e.g. the rule of a function's event, <Function><Event>).
            return f"arn:aws:local:{REGION}:{ACCOUNT}:{logical_id}"
        if attribute == "Arn":
            return self.arn(logical_id)
        if attribute in ("Name", "QueueName"):
            return self.physical_name(logical_id)
        if attribute == "QueueUrl":
            return str(self.ref(logical_id))
        if attribute == "StreamArn":  # its label is the stream's creation time: the stack asks moto
            return f"{self.arn(logical_id)}/stream/latest"
        raise TemplateError(f"!GetAtt {logical_id}.{attribute} is not known to the local stack")

    # --- intrinsic functions ------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        """Resolve every intrinsic in `value`; properties that resolve to AWS::NoValue are removed."""
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, argument), *_ = value.items()
            if key == "Ref":
                return self.ref(argument)
            if key == "Condition":
                return self.condition(argument)
            if key.startswith("Fn::"):
                return self._function(key[4:], argument)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    def _function(self, name: str, argument: Any) -> Any:
        if name == "GetAtt":
            parts = argument.split(".", 1) if isinstance(argument, str) else argument
            return self.get_att(parts[0], self.resolve(parts[1]))
        if name == "Sub":
            return self._sub(argument)
        if name == "If":
            condition, when_true, when_false = argument
            return self.resolve(when_true if self.condition(condition) else when_false)
        args = self.resolve(argument)
        if name == "Equals":
            return str(args[0]) == str(args[1])
        if name == "Not":
            return not args[0]
        if name == "And":
            return all(args)
        if name == "Or":
            return any(args)
        if name == "Join":
            return str(args[0]).join(str(item) for item in args[1])
        if name == "Split":
            return str(args[1]).split(str(args[0]))
        if name == "Join":
            return str(args[0]).join(str(item) for item in args[1])
        if name == "Select":
            return self._select(int(args[0]), args[1])
        raise TemplateError(f"Fn::{name} is not supported by the local stack")

    def _select(self, index: int, items: list[Any]) -> Any:
        if not self._require_all and index >= len(items):
            return ""  # a parameter left empty on purpose (see Template)
        return items[index]

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            text, variables = argument[0], self.resolve(argument[1])
        else:
            text, variables = argument, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return self.get_att(logical_id, attribute)
            return str(self.ref(name))

        return _SUB_VARIABLE.sub(replace, str(text)).replace("${!", "${")
