"""The context Lambda hands a function, for the benchmarks that call handlers in this process."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

ACCOUNT, REGION = "123456789012", "us-east-1"


@dataclass
class LambdaContext:
    """A function's context whose remaining time drops by `step_ms` each time it is asked (with
    the default of 0 it stays at `remaining_ms`): a short budget makes a bulk continue itself."""

    function_name: str = "CancelFunction"
    remaining_ms: int = 10_000
    step_ms: int = 0
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        self.remaining_ms -= self.step_ms
        return self.remaining_ms
