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


def emitted_metric_names() -> set[str]:
    """Each metric name a metric call of src/ is given: literal names, and f-string names whose
    variable part is `<value>.capitalize()` of one of the code's Literal aliases."""
    trees = list(_trees())
    literals = _literal_values(trees)
    names: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and _called(node) in _METRIC_CALLS):
                continue
            arguments = [keyword.value for keyword in node.keywords if keyword.arg == "name"] + node.args[:1]
            for argument in arguments:
                names.update(_strings(argument))
                if isinstance(argument, ast.JoinedStr):
                    prefix = "".join(
                        part.value
                        for part in argument.values
                        if isinstance(part, ast.Constant) and isinstance(part.value, str)
                    )
                    names.update(prefix + value.capitalize() for value in literals)
    return names


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
