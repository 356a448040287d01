"""The functions' zip holds only what the functions run.

The artifact is built as `sam build` builds it: SAM CLI's own builder (aws-lambda-builders, the
Python pip workflow) copies the template's CodeUri with its exclusions, then installs
requirements.txt beside it. The copy is ours to check; the installed libraries are the ones
pyproject.toml declares, which src/requirements.txt must pin alike.
"""

from __future__ import annotations

import sys
import tomllib
from modulefinder import ModuleFinder
from pathlib import Path

import pytest
from aws_lambda_builders.actions import CopySourceAction
from aws_lambda_builders.workflows.python_pip.workflow import PythonPipWorkflow
from packaging.requirements import Requirement

from devstack.template import Template
from support.constants import ROOT

# The Lambda Python runtime ships boto3: requirements.txt leaves it out so that `sam build`
# does not put a second copy in every zip.
RUNTIME_PROVIDED = {"boto3"}
# What the handlers may import from outside the artifact: the libraries requirements.txt installs
# (pydantic with Powertools' parser) or the runtime ships, and the stubs read under TYPE_CHECKING.
LIBRARIES = {"aws_lambda_powertools", "jwt", "pydantic", "boto3", "botocore"}
TYPE_STUBS_PREFIX = "mypy_boto3_"


@pytest.fixture(scope="module")
def functions() -> dict[str, tuple[Path, str]]:
    """Each function's code directory and handler module, as the template declares them."""
    return {
        name: (spec.code_dir, spec.handler.rpartition(".")[0])
        for name, spec in Template(require_all=False).functions().items()
    }


@pytest.fixture(scope="module")
def artifact(functions: dict[str, tuple[Path, str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    (code_dir,) = {code_dir for code_dir, _ in functions.values()}
    built = tmp_path_factory.mktemp("artifact")
    CopySourceAction(str(code_dir), str(built), excludes=PythonPipWorkflow.EXCLUDED_FILES).execute()
    return built


def files_of(directory: Path) -> set[str]:
    return {path.relative_to(directory).as_posix() for path in directory.rglob("*") if path.is_file()}


def test_every_function_is_built_from_the_service_code(functions: dict[str, tuple[Path, str]]) -> None:
    assert len(functions) >= 6
    assert {code_dir for code_dir, _ in functions.values()} == {ROOT / "src"}


def test_the_artifact_holds_the_modules_the_handlers_import_and_nothing_else(
    functions: dict[str, tuple[Path, str]], artifact: Path
) -> None:
    # Every import statement the handlers reach, those inside functions (the first request's)
    # and under TYPE_CHECKING too; the library imports fail here, outside the artifact's path.
    finder = ModuleFinder(path=[str(artifact)])
    for _, module in functions.values():
        finder.import_hook(module)
    found_files = [Path(found.__file__) for found in finder.modules.values() if found.__file__]  # type: ignore[attr-defined]
    reached = {path.relative_to(artifact).as_posix() for path in found_files if path.is_relative_to(artifact)}

    outside = {name.split(".")[0] for name in finder.badmodules}
    unknown = outside - set(sys.stdlib_module_names) - LIBRARIES
    assert {name for name in unknown if not name.startswith(TYPE_STUBS_PREFIX)} == set()

    files = files_of(artifact)
    assert "cancel_service/handlers/cancel_http.py" in reached
    assert files - reached == {"requirements.txt"}
    assert reached <= files


def test_the_command_line_is_not_in_the_artifact(artifact: Path) -> None:
    names = files_of(artifact)
    assert not {name for name in names if name.startswith(("cancel_service_cli/", "cancel_service/cli/"))}
    assert not (ROOT / "src" / "cancel_service" / "cli").exists()


def _requirements(lines: list[str]) -> dict[str, Requirement]:
    parsed = [Requirement(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return {requirement.name.lower(): requirement for requirement in parsed}


def test_requirements_txt_pins_what_pyproject_declares_for_the_functions() -> None:
    declared = _requirements(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    installed = _requirements((ROOT / "src" / "requirements.txt").read_text().splitlines())

    assert set(installed) == set(declared) - RUNTIME_PROVIDED
    for name, requirement in installed.items():
        wanted = declared[name]
        assert (requirement.extras, requirement.specifier) == (wanted.extras, wanted.specifier)
        assert str(requirement.specifier).startswith("=="), f"{name} is not pinned: {requirement}"
