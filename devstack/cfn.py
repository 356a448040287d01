"""template.yaml as a local deployment would see it: parameters, conditions, intrinsic functions,
physical names and ARNs of every resource, and each function's configuration after SAM's Globals.

Generic over resource types, so a table, bus, queue, state machine or function added to the
template is picked up by the local stack without edits here.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.template import TEMPLATE_PATH, load_template

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
STACK_NAME = "cancel-service-local"
NO_VALUE = object()  # AWS::NoValue: the property is removed

_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class TemplateError(ValueError):
    """The template uses something the local stack cannot resolve."""


@dataclass
class FunctionEvent:
    name: str
    type: str
    properties: dict[str, Any]


@dataclass
class FunctionSpec:
    """One AWS::Serverless::Function after Globals, with every intrinsic resolved."""

    logical_id: str
    name: str
    arn: str
    handler: str
    code_dir: Path
    runtime: str
    timeout: int
    memory: int
    environment: dict[str, str]
    events: list[FunctionEvent] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)


class Template:
    """A template with parameter values: resolves intrinsics to local physical names."""

    def __init__(
        self,
        parameters: dict[str, str] | None = None,
        *,
        path: Path = TEMPLATE_PATH,
        stack_name: str = STACK_NAME,
        raw: dict[str, Any] | None = None,
        aws_endpoint: str = f"https://sqs.{REGION}.amazonaws.com",
        require_all: bool = True,
    ) -> None:
        """`require_all=False` lets a parameter without a default and without a value be "" (for
        reading the template's shape, e.g. which function an event is for)."""
        self._require_all = require_all
        self.aws_endpoint = aws_endpoint.rstrip("/")
        self.path = path
        self.root = path.parent
        self.raw = raw if raw is not None else load_template(path)
        self.stack_name = stack_name
        self.resources: dict[str, dict[str, Any]] = self.raw.get("Resources", {})
        self.parameters = self._parameter_values(parameters or {})
        self._conditions: dict[str, bool] = {}

    # --- parameters and conditions -----------------------------------------------------------

    @staticmethod
    def declared_parameters(path: Path = TEMPLATE_PATH) -> set[str]:
        return set(load_template(path).get("Parameters", {}))

    def _parameter_values(self, given: dict[str, str]) -> dict[str, str]:
        declared: dict[str, Any] = self.raw.get("Parameters", {})
        unknown = set(given) - set(declared)
        if unknown:
            raise TemplateError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        values: dict[str, str] = {}
        for name, spec in declared.items():
            if name in given:
                values[name] = given[name]
            elif "Default" in spec:
                values[name] = str(spec["Default"])
            elif not self._require_all:
                values[name] = ""
            else:
                raise TemplateError(f"parameter {name} has no default; give it a value")
        return values

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.resolve(self.raw.get("Conditions", {})[name]))
        return self._conditions[name]

    def resource_enabled(self, logical_id: str) -> bool:
        condition = self.resources[logical_id].get("Condition")
        return condition is None or self.condition(condition)

    def of_type(self, *types: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self.resources.items()
            if resource.get("Type") in types and self.resource_enabled(logical_id)
        }

    # --- physical names -----------------------------------------------------------------------

    def _default_name(self, logical_id: str, limit: int = 64) -> str:
        return f"{self.stack_name}-{logical_id}"[:limit]

    def physical_name(self, logical_id: str) -> str:
        resource = self.resources[logical_id]
        kind = resource["Type"]
        props = resource.get("Properties") or {}
        name_property = {
            "AWS::DynamoDB::Table": "TableName",
            "AWS::Events::EventBus": "Name",
            "AWS::SQS::Queue": "QueueName",
            "AWS::Serverless::StateMachine": "Name",
            "AWS::StepFunctions::StateMachine": "StateMachineName",
            "AWS::Serverless::Function": "FunctionName",
            "AWS::Lambda::Function": "FunctionName",
            "AWS::Events::Rule": "Name",
            "AWS::Logs::LogGroup": "LogGroupName",
        }.get(kind)
        if name_property and props.get(name_property) is not None:
            return str(self.resolve(props[name_property]))
        return self._default_name(logical_id, 80 if kind == "AWS::SQS::Queue" else 64)

    def arn(self, logical_id: str) -> str:
        kind = self.resources[logical_id]["Type"]
        name = self.physical_name(logical_id)
        prefix = f"arn:aws:{{}}:{REGION}:{ACCOUNT}:"
        if kind == "AWS::DynamoDB::Table":
            return prefix.format("dynamodb") + f"table/{name}"
        if kind == "AWS::Events::EventBus":
            return prefix.format("events") + f"event-bus/{name}"
        if kind == "AWS::Events::Rule":
            return prefix.format("events") + f"rule/{name}"
        if kind == "AWS::SQS::Queue":
            return prefix.format("sqs") + name
        if kind in ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine"):
            return prefix.format("states") + f"stateMachine:{name}"
        if kind in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            return prefix.format("lambda") + f"function:{name}"
        if kind == "AWS::Logs::LogGroup":
            return prefix.format("logs") + f"log-group:{name}"
        return prefix.format("local") + f"{kind.split('::')[-1].lower()}/{name}"

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
        if kind in ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine"):
            return self.arn(name)
        if kind in ("AWS::Serverless::HttpApi", "AWS::Serverless::Api"):
            return "local"
        return self.physical_name(name)

    def get_att(self, logical_id: str, attribute: str) -> Any:
        if logical_id not in self.resources:
            # A resource SAM generates (e.g. the rule of a function's event, <Function><Event>).
            return f"arn:aws:local:{REGION}:{ACCOUNT}:{logical_id}"
        if attribute == "Arn":
            return self.arn(logical_id)
        if attribute in ("Name", "QueueName", "StateMachineName"):
            return self.physical_name(logical_id)
        if attribute == "QueueUrl":
            return self.ref(logical_id)
        if attribute == "StreamArn":
            return self.arn(logical_id) + "/stream/local"
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
        if name == "Select":
            index, items = int(args[0]), args[1]
            if not self._require_all and index >= len(items):
                return ""  # a parameter left empty on purpose (see __init__)
            return items[index]
        if name == "GetAZs":
            return [f"{REGION}a", f"{REGION}b", f"{REGION}c"]
        if name == "ToJsonString":
            import json

            return json.dumps(args, separators=(",", ":"))
        raise TemplateError(f"Fn::{name} is not supported by the local stack")

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
                return str(self.get_att(logical_id, attribute))
            return str(self.ref(name))

        return _SUB_VARIABLE.sub(replace, str(text)).replace("${!", "${")

    # --- functions ----------------------------------------------------------------------------

    def functions(self) -> dict[str, FunctionSpec]:
        """Every AWS::Serverless::Function, with SAM's Globals applied and intrinsics resolved."""
        globals_ = copy.deepcopy(self.raw.get("Globals", {}).get("Function", {}))
        specs: dict[str, FunctionSpec] = {}
        for logical_id, resource in self.of_type("AWS::Serverless::Function").items():
            own = copy.deepcopy(resource.get("Properties") or {})
            merged = {**globals_, **own}
            variables = {
                **globals_.get("Environment", {}).get("Variables", {}),
                **own.get("Environment", {}).get("Variables", {}),
            }
            properties = self.resolve(merged)
            environment = {name: _env_string(value) for name, value in self.resolve(variables).items()}
            events = [
                FunctionEvent(name, event["Type"], self.resolve(event.get("Properties") or {}))
                for name, event in (own.get("Events") or {}).items()
            ]
            specs[logical_id] = FunctionSpec(
                logical_id=logical_id,
                name=self.physical_name(logical_id),
                arn=self.arn(logical_id),
                handler=str(properties["Handler"]),
                code_dir=(self.root / str(properties.get("CodeUri", "."))).resolve(),
                runtime=str(properties.get("Runtime", "python3")),
                timeout=int(properties.get("Timeout", 3)),
                memory=int(properties.get("MemorySize", 128)),
                environment=environment,
                events=events,
                properties=properties,
            )
        return specs

    def http_api_cors(self) -> dict[str, Any] | None:
        """The CorsConfiguration of the (first) HttpApi, resolved; None when it has none."""
        for resource in self.of_type("AWS::Serverless::HttpApi").values():
            cors = (resource.get("Properties") or {}).get("CorsConfiguration")
            if cors is None:
                continue
            resolved = self.resolve(cors)
            if resolved is NO_VALUE or resolved is False:
                return None
            if resolved is True:
                return {"AllowOrigins": ["*"], "AllowMethods": ["*"], "AllowHeaders": ["*"]}
            return dict(resolved)
        return None


def _env_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
