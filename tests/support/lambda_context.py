"""Lambda contexts for in-process invocations: a roomy one, and one whose time runs out."""

from __future__ import annotations

from dataclasses import dataclass

from support.constants import ACCOUNT, REGION


@dataclass
class LambdaContext:
    function_name: str = "CancelFunction"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:CancelFunction"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


@dataclass
class BudgetContext:
    """A Lambda context whose remaining time drops by `step_ms` each time it is asked."""

    remaining_ms: int
    step_ms: int
    function_name: str = "BulkCancelFunction"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:BulkCancelFunction"
    aws_request_id: str = "bulk-0000"

    def get_remaining_time_in_millis(self) -> int:
        self.remaining_ms -= self.step_ms
        return self.remaining_ms
