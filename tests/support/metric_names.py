"""What the code under src/ can emit, read from its source (not from a list that could drift):
the names of the metrics it adds and the dependencies it reports failing."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from devstack.constants import ROOT

SOURCE = ROOT / "src" / "cancel_service"
# The calls that name a metric: Powertools' own, and the handlers' small helpers around them.
_METRIC_CALLS = {"add_metric", "single_metric", "_count"}


def _trees() -> Iterator[ast.Module]:
    for path in sorted(SOURCE.rglob("*.py")):
        yield ast.parse(Path(path).read_text(), filename=str(path))


def _called(node: ast.Call) -> str:
    function = node.func
    if isinstance(function, ast.Attribute):
        return function.attr
    return function.id if isinstance(function, ast.Name) else ""


def _strings(node: ast.expr) -> list[str]:
    """The string values an argument can take: a literal, or either branch of `a if c else b`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _strings(node.body) + _strings(node.orelse)
    return []


def _literal_values(trees: list[ast.Module]) -> set[str]:
    """Every value of a `Name = Literal[...]` alias of the code (e.g. a bulk's outcomes)."""
    values: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Subscript)
                and isinstance(node.value.value, ast.Name)
                and node.value.value.id == "Literal"
            ):
                elements = node.value.slice
                items = elements.elts if isinstance(elements, ast.Tuple) else [elements]
                values.update(
                    item.value
                    for item in items
                    if isinstance(item, ast.Constant) and isinstance(item.value, str)
                )
    return values


def _enum_values(trees: list[ast.Module]) -> set[str]:
    """Every string member of the code's StrEnum classes (a metric named `<member>.value`)."""
    values: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(base, ast.Name) and base.id == "StrEnum" for base in node.bases
            ):
                for statement in node.body:
                    if isinstance(statement, ast.Assign):
                        values.update(_strings(statement.value))
    return values


def _names(argument: ast.expr, literals: set[str], enums: set[str]) -> set[str]:
    names = set(_strings(argument))
    if isinstance(argument, ast.JoinedStr):
        prefix = "".join(
            part.value
            for part in argument.values
            if isinstance(part, ast.Constant) and isinstance(part.value, str)
        )
        names.update(prefix + value.capitalize() for value in literals)
    if isinstance(argument, ast.Attribute) and argument.attr == "value":
        names.update(enums)
    return names


def _module_dimensions(tree: ast.Module) -> frozenset[str]:
    """The dimensions a module adds to all its metrics (`metrics.add_dimension(name=...)`)."""
    return frozenset(
        value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "add_dimension"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "metrics"
        for keyword in node.keywords
        if keyword.arg == "name"
        for value in _strings(keyword.value) or ["*"]
    )


def emitted_metrics() -> dict[str, set[frozenset[str]]]:
    """Each metric name a metric call of src/ is given, with the dimension names it is emitted
    with: Powertools' `service`, the module's own dimensions, and a helper's literal dimension
    argument (`_count("DependencyFailures", "dependency", ...)`). A `*` stands for a dimension
    whose name the source does not spell."""
    trees = list(_trees())
    literals, enums = _literal_values(trees), _enum_values(trees)
    emitted: dict[str, set[frozenset[str]]] = {}
    for tree in trees:
        module_dimensions = _module_dimensions(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and _called(node) in _METRIC_CALLS):
                continue
            arguments = [keyword.value for keyword in node.keywords if keyword.arg == "name"] + node.args[:1]
            extra = {name for argument in node.args[1:2] for name in _strings(argument)}
            dimensions = frozenset({"service", *module_dimensions, *extra})
            for argument in arguments:
                for name in _names(argument, literals, enums):
                    emitted.setdefault(name, set()).add(dimensions)
    return emitted


def dependency_names() -> set[str]:
    """The dependencies the code reports unavailable: `DependencyUnavailable("<name>")`, and the
    names a conditional expression picks among."""
    names: set[str] = set()
    for tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _called(node) == "DependencyUnavailable" and node.args:
                names.update(_strings(node.args[0]))
            if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == "dependency" for target in node.targets
            ):
                names.update(_strings(node.value))
    return names
