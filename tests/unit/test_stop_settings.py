"""The stoppers' settings: the bulk lane's rate and pace table validated, and the StopExecution
client's retries and timeouts inside the time a stop is begun with."""

from __future__ import annotations

import pytest

from cancel_service.adapters.agent_executions import ATTEMPT_RESERVE_SECONDS
from cancel_service.adapters.aws import STOP_EXECUTION_CONFIG
from cancel_service.config import ConfigurationError, stop_pace_config


@pytest.mark.parametrize("value", ["", "0", "-3", "fast", "nan", "inf"])
def test_the_bulk_stop_rate_must_be_a_positive_number(monkeypatch, value):
    monkeypatch.setenv("STOP_EXECUTIONS_PER_SECOND", value)
    monkeypatch.setenv("STOP_PACE_TABLE", "pace")

    with pytest.raises(ConfigurationError, match="STOP_EXECUTIONS_PER_SECOND"):
        stop_pace_config()


def test_the_bulk_stopper_needs_its_pace_table(monkeypatch):
    monkeypatch.setenv("STOP_EXECUTIONS_PER_SECOND", "10")
    monkeypatch.delenv("STOP_PACE_TABLE", raising=False)

    with pytest.raises(ConfigurationError, match="STOP_PACE_TABLE"):
        stop_pace_config()


def test_a_fractional_rate_is_kept_as_given(monkeypatch):
    monkeypatch.setenv("STOP_EXECUTIONS_PER_SECOND", "2.5")
    monkeypatch.setenv("STOP_PACE_TABLE", "pace")

    assert stop_pace_config().stops_per_second == 2.5


def test_throttled_stops_are_retried_adaptively_within_the_reserved_time():
    # botocore keeps each option as an attribute; its type stubs declare only the constructor.
    config = STOP_EXECUTION_CONFIG
    assert config.retries == {"mode": "adaptive", "total_max_attempts": 4}  # type: ignore[attr-defined]
    # An attempt let through may take its connect and read timeouts, then botocore's backoff
    # before the next attempt (throttles: rand(0, 1) * 2 ** (attempt - 1) s, 4 s at most before
    # the fourth): all of it fits in what each attempt is checked to have left.
    longest_backoff = 2 ** (config.retries["total_max_attempts"] - 2)  # type: ignore[attr-defined]
    attempt = config.connect_timeout + config.read_timeout  # type: ignore[attr-defined]
    assert attempt + longest_backoff < ATTEMPT_RESERVE_SECONDS
