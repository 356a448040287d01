"""The cases of the fault matrix: every AWS call of every function, failing every way AWS fails,
a number of times the clients' retries absorb or for good."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from support.constants import (
    AGENT_STATE_MACHINE_ARN,
)
from support.http_faults import Fault, Kind

# botocore's standard mode makes 4 attempts, adaptive mode (StopExecution) 10: this many
# failures in a row are absorbed by its retries.
STANDARD_ABSORBED = 3
ADAPTIVE_ABSORBED = 3
EXECUTION_PREFIX = AGENT_STATE_MACHINE_ARN.replace(":stateMachine:", ":execution:") + ":"
CANCEL_SOURCE = "app.messages"
RETRIED = (Kind.THROTTLE, Kind.SERVER_ERROR, Kind.READ_TIMEOUT, Kind.CONNECT_TIMEOUT)
LOST = (Kind.LOST_RESPONSE_TIMEOUT, Kind.LOST_RESPONSE_5XX)


@dataclass(frozen=True)
class Case:
    function: str
    call: str
    kind: Kind
    attempts: int | None  # None: persistent
    after: int = 0
    per_item: bool = False

    def fault(self) -> Fault:
        return Fault(self.call, self.kind, self.attempts, self.after, self.per_item)

    @property
    def persistent(self) -> bool:
        return self.attempts is None

    @property
    def label(self) -> str:
        return f"{self.function} {self.fault().label}"


def cases_of(
    function: str, calls: list[str], writes: set[str], absorbed: int, partial_after: int | None
) -> Iterator[Case]:
    for call in calls:
        for kind in RETRIED:
            yield Case(function, call, kind, absorbed)
            yield Case(function, call, kind, None)
        yield Case(function, call, Kind.ACCESS_DENIED, None)
        if call in writes:
            for kind in LOST:
                yield Case(function, call, kind, 1, per_item=True)
                yield Case(function, call, kind, None)
        if call.startswith("PutEvents"):
            yield Case(function, call, Kind.PARTIAL_BATCH, 1)
            yield Case(function, call, Kind.PARTIAL_BATCH, None)
        if call == "UpdateItem" and partial_after is not None:
            # Some of the parallel writes succeed, the others fail for good.
            yield Case(function, call, Kind.SERVER_ERROR, None, after=partial_after)
            yield Case(function, call, Kind.THROTTLE, None, after=partial_after)


WRITES = {
    "UpdateItem",
    "PutEvents app.messages",
    "PutEvents app.messages.bulk",
    "StopExecution",
    "PutItem BulkStateTable",
    "UpdateItem BulkStateTable",
}
CANCEL_CASES = list(
    cases_of(
        "CancelFunction",
        ["GetItem", "Query byProjectAndStatus", "PutEvents app.messages", "UpdateItem"],
        WRITES,
        STANDARD_ABSORBED,
        partial_after=5,
    )
)
BULK_CASES = list(
    cases_of(
        "BulkCancelFunction",
        [
            "Query byOwner",
            "Query byProjectAndStatus",
            "Query byShardAndPosition",
            "BatchGetItem",
            "PutEvents app.messages",
            "UpdateItem",
            "PutEvents app.messages.bulk",
            "GetItem BulkStateTable",
            "PutItem BulkStateTable",
            "UpdateItem BulkStateTable",
        ],
        WRITES,
        STANDARD_ABSORBED,
        partial_after=1,
    )
)
EXECUTION_CASES = list(
    cases_of(
        "ExecutionStatusFunction",
        ["Query byExecutionArn", "PutEvents app.messages", "UpdateItem"],
        WRITES,
        STANDARD_ABSORBED,
        partial_after=None,
    )
)
STOP_CASES = list(cases_of("UserStopAgentFunction", ["StopExecution"], WRITES, ADAPTIVE_ABSORBED, None))


def case_id(case: Case) -> str:
    return case.fault().label.replace(" ", "-")
