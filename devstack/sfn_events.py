"""LOCAL STAND-IN for what AWS does by itself: Step Functions puts a "Step Functions Execution
Status Change" event on the account's default bus whenever an execution changes status. moto
does not, so a watcher polls the executions and puts those events."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from devstack.aws import LocalAws
from devstack.background import Background

if TYPE_CHECKING:
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

POLL_SECONDS = 0.25


def status_change_entry(execution: Mapping[str, Any]) -> PutEventsRequestEntryTypeDef:
    """The PutEvents entry of AWS's "Step Functions Execution Status Change" event."""

    def millis(moment: Any) -> int | None:
        return int(moment.timestamp() * 1000) if isinstance(moment, datetime) else None

    detail = {
        "executionArn": execution["executionArn"],
        "stateMachineArn": execution["stateMachineArn"],
        "name": execution["name"],
        "status": execution["status"],
        "startDate": millis(execution.get("startDate")),
        "stopDate": millis(execution.get("stopDate")),
        "input": execution.get("input"),
        "output": execution.get("output"),
        "inputDetails": {"included": True},
        "outputDetails": {"included": True} if execution.get("output") is not None else None,
        "error": execution.get("error"),
        "cause": execution.get("cause"),
    }
    return {
        "Source": "aws.states",
        "DetailType": "Step Functions Execution Status Change",
        "Resources": [execution["executionArn"]],
        "Detail": json.dumps(detail),
        "EventBusName": "default",
    }


class ExecutionWatcher:
    def __init__(self, aws: LocalAws, background: Background, log: Callable[[str], None]) -> None:
        self._sfn, self._events = aws.stepfunctions(), aws.events()
        self._stopping, self._log = background.stopping, log
        self._status: dict[str, str] = {}  # execution ARN -> the status last announced
        background.spawn(self._run, "sfn-status")

    def _run(self) -> None:
        while not self._stopping.wait(POLL_SECONDS):
            try:
                self._announce_changes()
            except Exception as error:  # noqa: BLE001 - keep watching; moto may be stopping
                if self._stopping.is_set():
                    return
                self._log(f"! execution watcher: {type(error).__name__}: {error}")

    def _announce_changes(self) -> None:
        for machine in self._sfn.list_state_machines()["stateMachines"]:
            pages = self._sfn.get_paginator("list_executions").paginate(
                stateMachineArn=machine["stateMachineArn"]
            )
            for execution in (execution for page in pages for execution in page["executions"]):
                arn, status = execution["executionArn"], execution["status"]
                if self._status.get(arn) != status:
                    self._status[arn] = status
                    entry = status_change_entry(self._sfn.describe_execution(executionArn=arn))
                    self._events.put_events(Entries=[entry])
