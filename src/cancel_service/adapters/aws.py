"""Shared botocore settings for every AWS client of the service."""

from __future__ import annotations

from botocore.config import Config

# Parallel conditional updates share one connection pool: keep it larger than the worker count.
UPDATE_CONCURRENCY = 8

# Standard retry mode backs off on throttles and transient errors; timeouts stay well inside the
# API Gateway integration limit so a slow dependency becomes a 503 rather than a gateway timeout.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4},
    connect_timeout=2,
    read_timeout=5,
    max_pool_connections=UPDATE_CONCURRENCY + 2,
)

# StopExecution has a small per-account token bucket that a bulk cancel can drain in seconds:
# adaptive mode rate-limits the client once it sees throttles, and more attempts ride them out
# rather than failing the stop (the function's timeout leaves room for the longer backoff).
STOP_EXECUTION_CONFIG = CLIENT_CONFIG.merge(Config(retries={"mode": "adaptive", "total_max_attempts": 10}))
