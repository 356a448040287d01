"""No import circle in the code of the repository: the Lambda package, the local stack and the
tests' support package. Every import statement counts, those inside functions too, since a circle
dodged by a late import is still a circle for whoever reads the code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from support.constants import ROOT

PACKAGES = {
    "cancel_service": ROOT / "src" / "cancel_service",
    "devstack": ROOT / "devstack",
    "support": ROOT / "tests" / "support",
}


def module_name(package: str, root: Path, path: Path) -> str:
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The known modules that the module `name` (file `path`) imports, by any import statement."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return (found & known) - {name}


def import_graph() -> dict[str, set[str]]:
    files = {
        module_name(package, root, path): path
        for package, root in PACKAGES.items()
        for path in root.rglob("*.py")
    }
    return {name: imported_modules(name, path, set(files)) for name, path in files.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every circle found by a depth-first walk (each reported once per entry point)."""
    found: list[list[str]] = []
    done: set[str] = set()

    def walk(node: str, path: list[str]) -> None:
        for target in sorted(graph.get(node, ())):
            if target in path:
                found.append([*path[path.index(target) :], target])
            elif target not in done:
                walk(target, [*path, target])
        done.add(node)

    for start in sorted(graph):
        if start not in done:
            walk(start, [start])
    return found


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"a"}}, [["a", "b", "a"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, [["a", "b", "c", "a"]]),
    ],
)
def test_the_circle_finder_finds_circles(graph, expected):
    assert circles(graph) == expected


def test_the_graph_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "late.py"
    module.write_text("def start():\n    from devstack.gateway import ApiGateway\n")
    assert imported_modules("devstack.late", module, {"devstack.gateway"}) == {"devstack.gateway"}


def test_no_import_circle_in_the_repository():
    graph = import_graph()
    assert {"cancel_service.core.cancel", "devstack.stack", "devstack.gateway", "support.store"} <= set(graph)
    assert circles(graph) == []
