"""Shared botocore settings for every AWS client of the service, and the bound on calls in flight."""

from __future__ import annotations

from botocore.config import Config

# The most AWS calls one container has in flight at once (the cancel core's executor): the one
# place this bound is named. Each client's connection pool holds as many connections, so no call
# ever waits for a free one.
CALL_CONCURRENCY = 32

# Standard retry mode backs off on throttles and transient errors; timeouts stay well inside the
# API Gateway integration limit so a slow dependency becomes a 503 rather than a gateway timeout.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4},
    connect_timeout=2,
    read_timeout=5,
    max_pool_connections=CALL_CONCURRENCY,
)

# StopExecution has a per-account token bucket shared with every other caller: adaptive mode
# rate-limits the client once it sees throttles. A few attempts are enough: a stop still
# throttled after them fails its queue record alone, and the queue delivers it again, so a batch
# of ten never spends its function's timeout on backoff.
STOP_EXECUTION_CONFIG = CLIENT_CONFIG.merge(Config(retries={"mode": "adaptive", "total_max_attempts": 4}))
