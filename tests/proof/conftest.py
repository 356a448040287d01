"""Fixtures of the proof suite: faults planned at the HTTP layer of the AWS clients. Its figures
are printed after the run by tests/conftest.py (which the controller of an xdist run loads)."""

from __future__ import annotations

import pytest

from support.http_faults import FaultPlan, install


@pytest.fixture
def plan(monkeypatch: pytest.MonkeyPatch) -> FaultPlan:
    return install(monkeypatch)
