"""The stopper's pace: never more stops in any one-second window than its share of the rate, no
stops saved up while idle, the rate and concurrency settings validated, and the client's own
retries of a throttled stop."""

from __future__ import annotations

import pytest

from cancel_service.adapters.agent_executions import RateLimit
from cancel_service.adapters.aws import STOP_EXECUTION_CONFIG
from cancel_service.config import ConfigurationError, stop_executions_per_second_per_instance
from support.fake_clock import FakeClock


def most_in_any_window(instants: list[float], window: float) -> int:
    return max(sum(1 for other in instants if start <= other < start + window) for start in instants)


@pytest.mark.parametrize(("rate", "stops"), [(5.0, 60), (0.5, 7), (2.5, 26), (20.0, 200)])
def test_stops_never_exceed_the_rate_in_any_one_second_window(rate, stops):
    clock = FakeClock()
    limit = RateLimit(rate, clock=clock, sleep=clock.sleep)
    taken_at = []
    for _ in range(stops):
        limit.take()
        taken_at.append(clock.now)

    allowed = max(1, int(rate))
    assert taken_at[:allowed] == [taken_at[0]] * allowed  # a user's Stop of a few messages goes at once
    assert most_in_any_window(taken_at, 1.0 if rate >= 1 else 1 / rate) == allowed
    # ... and the backlog is paced at the rate, not slower.
    assert taken_at[-1] - taken_at[0] == pytest.approx((stops - 1) // allowed * max(1.0, 1 / rate), rel=0.01)


def test_an_idle_stopper_does_not_save_up_stops():
    clock = FakeClock()
    limit = RateLimit(4.0, clock=clock, sleep=clock.sleep)
    for _ in range(4):
        limit.take()
    clock.now += 60  # an idle minute does not buy a minute's worth of stops
    taken_at = []
    for _ in range(12):
        limit.take()
        taken_at.append(clock.now)
    assert most_in_any_window(taken_at, 1.0) == 4


@pytest.mark.parametrize("value", ["", "0", "-3", "fast", "nan", "inf"])
def test_the_stop_rate_must_be_a_positive_number(monkeypatch, value):
    monkeypatch.setenv("STOP_EXECUTIONS_PER_SECOND", value)
    monkeypatch.setenv("STOP_MAXIMUM_CONCURRENCY", "4")

    with pytest.raises(ConfigurationError, match="STOP_EXECUTIONS_PER_SECOND"):
        stop_executions_per_second_per_instance()


@pytest.mark.parametrize("value", ["", "0", "2.5", "four", "²"])
def test_the_maximum_concurrency_must_be_a_positive_integer(monkeypatch, value):
    monkeypatch.setenv("STOP_EXECUTIONS_PER_SECOND", "20")
    monkeypatch.setenv("STOP_MAXIMUM_CONCURRENCY", value)

    with pytest.raises(ConfigurationError, match="STOP_MAXIMUM_CONCURRENCY"):
        stop_executions_per_second_per_instance()


def test_each_stopper_gets_its_share_of_the_rate(monkeypatch):
    monkeypatch.setenv("STOP_EXECUTIONS_PER_SECOND", "20")
    monkeypatch.setenv("STOP_MAXIMUM_CONCURRENCY", "4")

    assert stop_executions_per_second_per_instance() == 5.0


def test_throttled_stops_are_retried_with_backoff_by_the_client():
    # Adaptive mode: client-side rate limiting once throttled, on top of the standard backoff.
    # botocore keeps each option as an attribute; its type stubs declare only the constructor.
    assert STOP_EXECUTION_CONFIG.retries == {"mode": "adaptive", "total_max_attempts": 4}  # type: ignore[attr-defined]
