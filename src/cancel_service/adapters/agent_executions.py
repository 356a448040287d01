"""Step Functions: stop the agent execution working on a cancelled message, at a bounded rate."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from cancel_service.errors import NotAnAgentExecution
from cancel_service.observability import logger, tracer

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

STOP_ERROR = "MessageCancelled"


class RateLimit:
    """At most `rate` calls in any one-second window (below one per second: one call per
    `1 / rate` seconds), measured from the moment each call was let through.

    Not a token bucket: a bucket lets one second's burst and one second's refill into the same
    window, twice the rate, which Step Functions' quota would see. Here a user's Stop of a few
    messages still goes at once, and a backlog is paced so that no window holds more. One per
    container, used by one thread at a time (Lambda runs one invocation per container and the
    stopper makes its calls one after the other).
    """

    # A hair over a second, so that calls measured a moment after they were let through still
    # fall in distinct one-second windows.
    _WINDOW_MARGIN_SECONDS = 0.005

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("the rate must be positive")
        self._calls = max(1, int(rate))
        self._window = max(1.0, 1.0 / rate) + self._WINDOW_MARGIN_SECONDS
        self._recent: deque[float] = deque()
        self._clock = clock
        self._sleep = sleep

    def take(self) -> None:
        """Let one call through, first waiting until the window has room for it."""
        now = self._clock()
        while self._recent and now - self._recent[0] >= self._window:
            self._recent.popleft()
        if len(self._recent) >= self._calls:
            self._sleep(self._window - (now - self._recent.popleft()))
            now = self._clock()
        self._recent.append(now)


class AgentExecutions:
    """The executions of one state machine, the agent's; no other is ever stopped."""

    def __init__(self, client: SFNClient, state_machine_arn: str, pace: RateLimit) -> None:
        self._client = client
        self._pace = pace
        # arn:<partition>:states:<region>:<account>:execution:<state machine>:<execution>
        self._execution_prefix = state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":"

    @tracer.capture_method
    def stop(self, execution_arn: str, cause: str) -> bool:
        """Stop the execution; False when there was nothing to stop (it is gone).

        Raises NotAnAgentExecution, before any call, for an execution of another state machine:
        IAM would refuse it too, but the function does not rely on its deployment for that.
        Each call waits for its turn under the container's rate limit, so that the stoppers
        together stay under the account's StopExecution quota.
        Stopping an execution that already ended succeeds in Step Functions; one that no longer
        exists (past its retention) raises ExecutionDoesNotExist. Neither leaves anything to do.
        Any other error (throttles left after the client's retries included) is raised, so that
        this stop request fails alone and the queue delivers it again.
        """
        name = execution_arn.removeprefix(self._execution_prefix)
        if name == execution_arn or not name or ":" in name:
            raise NotAnAgentExecution(execution_arn)
        self._pace.take()
        try:
            self._client.stop_execution(executionArn=execution_arn, error=STOP_ERROR, cause=cause)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ExecutionDoesNotExist":
                raise
            logger.info("execution to stop does not exist", extra={"execution_arn": execution_arn})
            return False
        return True
