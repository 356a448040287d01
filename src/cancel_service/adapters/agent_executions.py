"""Step Functions: stop the agent execution working on a cancelled message."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from cancel_service.observability import logger, tracer

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

STOP_ERROR = "MessageCancelled"


class AgentExecutions:
    def __init__(self, client: SFNClient) -> None:
        self._client = client

    @tracer.capture_method
    def stop(self, execution_arn: str, cause: str) -> bool:
        """Stop the execution; False when there was nothing to stop (it is gone).

        Stopping an execution that already ended succeeds in Step Functions; one that no longer
        exists (past its retention) raises ExecutionDoesNotExist. Neither leaves anything to do.
        Any other error (throttles left after the client's retries included) is raised, so the
        invocation fails and Lambda's retries and failure destination take over.
        """
        try:
            self._client.stop_execution(executionArn=execution_arn, error=STOP_ERROR, cause=cause)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ExecutionDoesNotExist":
                raise
            logger.info("execution to stop does not exist", extra={"execution_arn": execution_arn})
            return False
        return True
