"""Step Functions: stop the agent execution working on a cancelled message, every attempt of the
client within the invocation's time (and, in the bulk lane, at the lane's pace)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from cancel_service.errors import NotAnAgentExecution, OutOfTime, StopRefused
from cancel_service.observability import logger, tracer

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

    from cancel_service.adapters.stop_pace import SharedPace

STOP_ERROR = "MessageCancelled"

# Step Functions' limit on StopExecution's `cause` (characters).
MAX_CAUSE_LENGTH = 32_768

# Step Functions' answers to a stop that no retry can make succeed.
REFUSED_CODES = frozenset({"InvalidArn", "ValidationException"})

# What one attempt may still take once let through, and the client's backoff after it: its
# connect and read timeouts (STOP_EXECUTION_CONFIG), botocore's longest backoff before the last
# attempt (throttles: up to 4 s before the fourth), and a margin to report the batch.
ATTEMPT_RESERVE_SECONDS = 1 + 2 + 4 + 0.5


class StopAttempts:
    """Every StopExecution attempt of a client, its retries included, passes here first (botocore's
    `before-send` event, ahead of any other handler): an attempt is made only with time left for
    it and the backoff after it, and, when there is a pace, at the moment the pace reserved for it.
    A moment too late for the invocation is left unused: the lane then runs under its rate.
    """

    def __init__(
        self,
        pace: SharedPace | None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._pace = pace
        self._clock = clock
        self._sleep = sleep
        self._remaining: Callable[[], float] = lambda: 0.0

    def watch(self, client: SFNClient) -> SFNClient:
        client.meta.events.register_first("before-send.sfn.StopExecution", self._before_attempt)
        return client

    def begin(self, stops: int, remaining_seconds: Callable[[], float]) -> None:
        """An invocation begins `stops` stops with this remaining time: the pace, if any, claims
        their moments in one write."""
        self._remaining = remaining_seconds
        if self._pace is not None:
            self._pace.expect(stops)

    def has_time(self) -> bool:
        return self._remaining() >= ATTEMPT_RESERVE_SECONDS

    def _before_attempt(self, **_kwargs: Any) -> None:
        if not self.has_time():
            raise OutOfTime
        if self._pace is None:
            return
        wait = self._pace.reserve() - self._clock()
        if self._remaining() - max(wait, 0.0) < ATTEMPT_RESERVE_SECONDS:
            raise OutOfTime
        if wait > 0:
            self._sleep(wait)


class AgentExecutions:
    """The executions of one state machine, the agent's; no other is ever stopped."""

    def __init__(self, client: SFNClient, state_machine_arn: str, attempts: StopAttempts) -> None:
        self._client = client
        self.attempts = attempts
        # arn:<partition>:states:<region>:<account>:execution:<state machine>:<execution>
        self._execution_prefix = state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":"

    @tracer.capture_method
    def stop(self, execution_arn: str, cause: str) -> bool:
        """Stop the execution; False when there was nothing to stop (it is gone).

        Raises NotAnAgentExecution, before any call, for an execution of another state machine:
        IAM would refuse it too, but the function does not rely on its deployment for that.
        Raises StopRefused for a stop Step Functions can never take (a cause over its limit,
        before any call; an ARN or a cause it answers as invalid).
        Raises OutOfTime when the invocation has no time left for an attempt.
        Stopping an execution that already ended succeeds in Step Functions; one that no longer
        exists (past its retention) raises ExecutionDoesNotExist. Neither leaves anything to do.
        Any other error (throttles left after the client's retries included) is raised, so that
        this stop request fails alone and the queue delivers it again.
        """
        name = execution_arn.removeprefix(self._execution_prefix)
        if name == execution_arn or not name or ":" in name:
            raise NotAnAgentExecution(execution_arn)
        if len(cause) > MAX_CAUSE_LENGTH:
            raise StopRefused(f"a cause of {len(cause)} characters (Step Functions takes {MAX_CAUSE_LENGTH})")
        try:
            self._client.stop_execution(executionArn=execution_arn, error=STOP_ERROR, cause=cause)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code in REFUSED_CODES:
                raise StopRefused(f"Step Functions refused the stop: {code}") from error
            if code != "ExecutionDoesNotExist":
                raise
            logger.info("execution to stop does not exist", extra={"execution_arn": execution_arn})
            return False
        return True
