"""Step Functions: stop the agent execution working on a cancelled message, at a bounded rate."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from cancel_service.errors import NotAnAgentExecution
from cancel_service.observability import logger, tracer

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

STOP_ERROR = "MessageCancelled"


class TokenBucket:
    """At most `rate` calls per second on average, and at most one second's worth at once.

    One per container, used by one thread at a time (Lambda runs one invocation per container
    and the stopper makes its calls one after the other). The burst lets a user's Stop of a few
    messages go at once; a backlog is paced at `rate`.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("the rate must be positive")
        self._rate = rate
        self._capacity = max(1.0, rate)
        self._tokens = self._capacity
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()

    def take(self) -> None:
        """Take a token, first waiting for one when there is none."""
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        if self._tokens < 1:
            wait = (1 - self._tokens) / self._rate
            self._sleep(wait)
            # The token became available at now + wait; a sleep cut short is made up for by the
            # next call, which counts from that moment.
            self._tokens, self._updated = 1.0, now + wait
        self._tokens -= 1


class AgentExecutions:
    """The executions of one state machine, the agent's; no other is ever stopped."""

    def __init__(self, client: SFNClient, state_machine_arn: str, pace: TokenBucket) -> None:
        self._client = client
        self._pace = pace
        # arn:<partition>:states:<region>:<account>:execution:<state machine>:<execution>
        self._execution_prefix = state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":"

    @tracer.capture_method
    def stop(self, execution_arn: str, cause: str) -> bool:
        """Stop the execution; False when there was nothing to stop (it is gone).

        Raises NotAnAgentExecution, before any call, for an execution of another state machine:
        IAM would refuse it too, but the function does not rely on its deployment for that.
        Each call waits for its turn in the container's token bucket, so that the stoppers
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
