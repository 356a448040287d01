"""Step Functions: stop the agent execution working on a cancelled message."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from cancel_service.errors import NotAnAgentExecution
from cancel_service.observability import logger, tracer

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

STOP_ERROR = "MessageCancelled"


class AgentExecutions:
    """The executions of one state machine, the agent's; no other is ever stopped."""

    def __init__(self, client: SFNClient, state_machine_arn: str) -> None:
        self._client = client
        # arn:<partition>:states:<region>:<account>:execution:<state machine>:<execution>
        self._execution_prefix = state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":"

    @tracer.capture_method
    def stop(self, execution_arn: str, cause: str) -> bool:
        """Stop the execution; False when there was nothing to stop (it is gone).

        Raises NotAnAgentExecution, before any call, for an execution of another state machine:
        IAM would refuse it too, but the function does not rely on its deployment for that.
        Stopping an execution that already ended succeeds in Step Functions; one that no longer
        exists (past its retention) raises ExecutionDoesNotExist. Neither leaves anything to do.
        Any other error (throttles left after the client's retries included) is raised, so the
        invocation fails and Lambda's retries and failure destination take over.
        """
        name = execution_arn.removeprefix(self._execution_prefix)
        if name == execution_arn or not name or ":" in name:
            raise NotAnAgentExecution(execution_arn)
        try:
            self._client.stop_execution(executionArn=execution_arn, error=STOP_ERROR, cause=cause)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ExecutionDoesNotExist":
                raise
            logger.info("execution to stop does not exist", extra={"execution_arn": execution_arn})
            return False
        return True
