"""Fixtures of the unit tests: the template translated by the SAM transform, once."""

from __future__ import annotations

from typing import Any

import pytest

from support.cfn import PARAMETERS, translate


@pytest.fixture(scope="session")
def cfn(template: dict[str, Any]) -> dict[str, Any]:
    return translate(template, PARAMETERS)
