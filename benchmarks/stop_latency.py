"""Time from a user's Stop (POST /api/messages/cancel) to its agent executions ABORTED, on the
local stack: HTTP API -> CancelFunction -> cancel bus -> stop rule -> stop queue -> StopAgentFunction
-> StopExecution.

Each round seeds the demo project anew (processing messages, each with a RUNNING stand-in agent
execution), sends the Stop over HTTP and polls Step Functions every 10 ms until every execution
of the cancelled messages is ABORTED. The first round warms the containers up and is not counted.
Printed: each round's milliseconds, then the median.

Run: .venv/bin/python benchmarks/stop_latency.py [rounds]
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import urllib.request

from devstack.constants import CANCEL_PATH
from devstack.demo import DEMO_PROJECT, DEMO_USER
from devstack.stack import DevStack, StackOptions

POLL_SECONDS = 0.01
GIVE_UP_SECONDS = 30.0


def stop_over_http(stack: DevStack) -> list[str]:
    """The Stop a user sends; returns the ids of the messages it cancelled."""
    request = urllib.request.Request(  # noqa: S310 - the local stack on loopback
        f"{stack.origin}{CANCEL_PATH}",
        data=json.dumps({"projectId": DEMO_PROJECT}).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {stack.mint(DEMO_USER)}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
        answer = json.loads(response.read())
    message_ids: list[str] = answer["messageIds"]
    return message_ids


def one_round(stack: DevStack) -> float:
    """Milliseconds from the Stop sent to the last of its executions ABORTED."""
    stack.demo.seed()
    executions = {
        m["id"]: m["executionArn"] for m in stack.demo.messages(DEMO_PROJECT) if "executionArn" in m
    }
    sfn = stack.client("stepfunctions")
    started = time.perf_counter()
    cancelled = stop_over_http(stack)
    waiting = {executions[message_id] for message_id in cancelled}
    while waiting and time.perf_counter() - started < GIVE_UP_SECONDS:
        waiting = {arn for arn in waiting if sfn.describe_execution(executionArn=arn)["status"] != "ABORTED"}
        if waiting:
            time.sleep(POLL_SECONDS)
    if waiting:
        raise RuntimeError(f"not ABORTED after {GIVE_UP_SECONDS} s: {sorted(waiting)}")
    return (time.perf_counter() - started) * 1000


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    options = StackOptions(api_port=0, clerk_port=0, aws_port=0, seed=False)
    with DevStack(options, log=lambda _line: None) as stack:
        one_round(stack)  # warm-up: the first containers of each function start here
        samples = []
        for index in range(rounds):
            samples.append(one_round(stack))
            print(f"round {index + 1}: {samples[-1]:.0f} ms")
        print(f"median Stop -> ABORTED: {statistics.median(samples):.0f} ms over {rounds} rounds")


if __name__ == "__main__":
    main()
