"""template.yaml as a local deployment sees it: read once, with parameter values, conditions and
intrinsics resolved (devstack.intrinsics), and each function's configuration after SAM's Globals.

The one model of the template that the local stack, `invoke`, the tests and the benchmarks read.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from devstack.constants import REGION, STACK_NAME, TEMPLATE_PATH
from devstack.intrinsics import NO_VALUE, Resolver, TemplateError


class _CloudFormationLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short forms (!Ref, !Sub, !GetAtt ...) kept as their long forms."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    # !Ref and !Condition are the two short forms whose long form has no Fn:: prefix.
    return {suffix: value} if suffix in ("Ref", "Condition") else {f"Fn::{suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with path.open() as stream:
        template: dict[str, Any] = yaml.load(stream, Loader=_CloudFormationLoader)  # noqa: S506 - SafeLoader subclass
    return template


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    """The resources of one type in a template as written (nothing resolved)."""
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }


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
    """A template with parameter values: resolves intrinsics to local physical names.

    `require_all=False` lets a parameter without a default and without a value be "" (for
    reading the template's shape, e.g. which function an event is for)."""

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
        self.path = path
        self.root = path.parent
        self.raw = raw if raw is not None else load_template(path)
        self.stack_name = stack_name
        self.resources: dict[str, dict[str, Any]] = self.raw.get("Resources", {})
        self.parameters = _parameter_values(self.raw.get("Parameters", {}), parameters or {}, require_all)
        self._resolver = Resolver(
            self.raw,
            self.parameters,
            stack_name=stack_name,
            aws_endpoint=aws_endpoint,
            require_all=require_all,
        )
        self.resolve = self._resolver.resolve
        self.physical_name = self._resolver.physical_name
        self.arn = self._resolver.arn

    def of_type(self, *types: str) -> dict[str, dict[str, Any]]:
        """The resources of these types whose condition (if any) holds."""
        return {
            logical_id: resource
            for logical_id, resource in self.resources.items()
            if resource.get("Type") in types
            and ("Condition" not in resource or self._resolver.condition(resource["Condition"]))
        }

    def functions(self) -> dict[str, FunctionSpec]:
        """Every AWS::Serverless::Function, with SAM's Globals applied and intrinsics resolved."""
        globals_ = copy.deepcopy(self.raw.get("Globals", {}).get("Function", {}))
        return {
            logical_id: self._function(logical_id, globals_, copy.deepcopy(resource.get("Properties") or {}))
            for logical_id, resource in self.of_type("AWS::Serverless::Function").items()
        }

    def _function(self, logical_id: str, globals_: dict[str, Any], own: dict[str, Any]) -> FunctionSpec:
        # SAM's Globals: a function's own property replaces the global one, except the
        # environment's variables, which are merged name by name.
        variables = {
            **globals_.get("Environment", {}).get("Variables", {}),
            **own.get("Environment", {}).get("Variables", {}),
        }
        properties = self.resolve({**globals_, **own})
        return FunctionSpec(
            logical_id=logical_id,
            name=self.physical_name(logical_id),
            arn=self.arn(logical_id),
            handler=str(properties["Handler"]),
            code_dir=(self.root / str(properties.get("CodeUri", "."))).resolve(),
            runtime=str(properties.get("Runtime", "python3")),
            timeout=int(properties.get("Timeout", 3)),
            memory=int(properties.get("MemorySize", 128)),
            environment={name: _env_string(value) for name, value in self.resolve(variables).items()},
            events=[
                FunctionEvent(name, event["Type"], self.resolve(event.get("Properties") or {}))
                for name, event in (own.get("Events") or {}).items()
            ],
            properties=properties,
        )

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

    def http_api_throttle(self) -> tuple[float, int] | None:
        """The (rate, burst) of the (first) HttpApi's DefaultRouteSettings; None when unthrottled."""
        for resource in self.of_type("AWS::Serverless::HttpApi").values():
            settings = self.resolve((resource.get("Properties") or {}).get("DefaultRouteSettings") or {})
            if "ThrottlingRateLimit" in settings and "ThrottlingBurstLimit" in settings:
                return float(settings["ThrottlingRateLimit"]), int(settings["ThrottlingBurstLimit"])
        return None


def _parameter_values(declared: dict[str, Any], given: dict[str, str], require_all: bool) -> dict[str, str]:
    unknown = set(given) - set(declared)
    if unknown:
        raise TemplateError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    values: dict[str, str] = {}
    for name, spec in declared.items():
        if name in given:
            values[name] = given[name]
        elif "Default" in spec:
            values[name] = str(spec["Default"])
        elif not require_all:
            values[name] = ""
        else:
            raise TemplateError(f"parameter {name} has no default; give it a value")
    return values


def _env_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
