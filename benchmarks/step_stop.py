"""Time from a user's Stop to the agent's running step stopped, on the local stack: the stand-in
agent's step streams its answer into the message (4 words a second) under message-cancel-watch;
the Stop cancels the message over HTTP; the watch sees the cancel and the step ends.

Each round seeds the demo project anew (two processing messages, each with a RUNNING execution
whose step streams), waits until every step has written a few words, sends the Stop and waits
until each cancelled message's step has ended and its execution is ABORTED. The first round warms
the containers up and is not counted. Printed: each round, then over every step of every round
the p50 and p99 (nearest rank) of Stop sent -> step ended and HTTP 200 -> step ended, the chunks
written after the 200 (total and most by one step), the latest of them after the 200, and the
p50 of Stop sent -> ABORTED.

Run: .venv/bin/python benchmarks/step_stop.py [rounds]    (default 20)
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass

from stop_latency import stop_over_http

from devstack.agent.answer import StepOutcome
from devstack.demo import DEMO_PROJECT
from devstack.stack import DevStack, StackOptions

POLL_SECONDS = 0.02
GIVE_UP_SECONDS = 30.0
WORDS_BEFORE_STOP = 3


@dataclass
class StepStop:
    sent_to_ended_ms: float
    answered_to_ended_ms: float
    chunks_after_answer: int
    last_chunk_after_answer_ms: float  # 0 when no chunk came after the answer


def wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + GIVE_UP_SECONDS
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up after {GIVE_UP_SECONDS} s waiting for {what}")
        time.sleep(POLL_SECONDS)


def one_round(stack: DevStack) -> tuple[list[StepStop], float]:
    """Each cancelled step's figures, and the milliseconds from the Stop sent to every ABORTED."""
    outcomes_before = len(stack.agent_steps.outcomes)
    stack.demo.seed()
    messages = {m["id"]: m for m in stack.demo.messages(DEMO_PROJECT) if m["status"] == "processing"}
    wait_for(
        lambda: all(
            int(m.get("contentWords", 0)) >= WORDS_BEFORE_STOP
            for m in stack.demo.messages(DEMO_PROJECT)
            if m["id"] in messages
        ),
        "the steps to stream",
    )
    sent = time.time()
    cancelled = stop_over_http(stack)
    answered = time.time()
    sfn = stack.client("stepfunctions")

    def ended() -> dict[str, StepOutcome]:
        return {
            o.message_id: o for o in stack.agent_steps.outcomes[outcomes_before:] if o.message_id in cancelled
        }

    wait_for(lambda: len(ended()) == len(cancelled), "the steps to end")
    waiting = {str(messages[message_id]["executionArn"]) for message_id in cancelled}
    while waiting:
        waiting = {arn for arn in waiting if sfn.describe_execution(executionArn=arn)["status"] != "ABORTED"}
        if time.time() - sent > GIVE_UP_SECONDS:
            raise RuntimeError(f"not ABORTED: {sorted(waiting)}")
        time.sleep(POLL_SECONDS)
    aborted_ms = (time.time() - sent) * 1000
    stops = []
    for outcome in ended().values():
        if outcome.ended != "cancelled":
            raise RuntimeError(f"step of {outcome.message_id} ended {outcome.ended}, not cancelled")
        late = [moment for moment in outcome.chunk_times if moment > answered]
        stops.append(
            StepStop(
                sent_to_ended_ms=(outcome.ended_at - sent) * 1000,
                answered_to_ended_ms=(outcome.ended_at - answered) * 1000,
                chunks_after_answer=len(late),
                last_chunk_after_answer_ms=(max(late) - answered) * 1000 if late else 0.0,
            )
        )
    return stops, aborted_ms


def nearest_rank(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    options = StackOptions(api_port=0, clerk_port=0, aws_port=0, seed=False)
    with DevStack(options, log=lambda _line: None) as stack:
        one_round(stack)  # warm-up: the first containers of each function start here
        stops: list[StepStop] = []
        aborted: list[float] = []
        for index in range(rounds):
            round_stops, aborted_ms = one_round(stack)
            stops += round_stops
            aborted.append(aborted_ms)
            figures = ", ".join(
                f"{s.sent_to_ended_ms:.0f} ms ({s.chunks_after_answer} chunks after the 200)"
                for s in round_stops
            )
            print(f"round {index + 1}: step ended {figures}; ABORTED {aborted_ms:.0f} ms")
    sent = [s.sent_to_ended_ms for s in stops]
    answered = [s.answered_to_ended_ms for s in stops]
    p50, p99 = nearest_rank(answered, 50), nearest_rank(answered, 99)
    late = [s.chunks_after_answer for s in stops]
    print(f"{len(stops)} steps stopped over {rounds} Stops")
    print(
        f"Stop sent -> step ended: p50 {nearest_rank(sent, 50):.0f} ms, p99 {nearest_rank(sent, 99):.0f} ms"
    )
    print(f"HTTP 200 -> step ended: p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    print(
        f"chunks written after the 200: {sum(late)} in all, at most {max(late)} by one step, the last "
        f"{max(s.last_chunk_after_answer_ms for s in stops):.0f} ms after it"
    )
    print(f"Stop sent -> executions ABORTED: p50 {nearest_rank(aborted, 50):.0f} ms")


if __name__ == "__main__":
    main()
