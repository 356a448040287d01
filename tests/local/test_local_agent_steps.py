"""The stand-in agent's running step stops too, on the local stack as a user runs it: each demo
message's agent streams its answer into the message; after the demo user's Stop (HTTP 200) no
agent writes a chunk more than 2 s later, and the executions are ABORTED."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime

import pytest

from devstack.agent.answer import ANSWER
from devstack.constants import CANCEL_PATH
from devstack.demo import DEMO_MESSAGES, DEMO_PROJECT
from support.local_stack import StackProcess, http, wait_until

PROCESSING = sorted(message_id for message_id, _, status in DEMO_MESSAGES if status == "processing")
LATE_CHUNK_SECONDS = 2.0
WAIT_SECONDS = 30


@pytest.fixture
def stack() -> Iterator[StackProcess]:
    with StackProcess() as running:
        yield running


def messages(stack: StackProcess) -> dict[str, dict]:
    answer = http("GET", f"{stack.origin}/__devstack/messages?projectId={DEMO_PROJECT}")
    assert answer.status == 200
    return {m["id"]: m for m in answer.body["messages"] if m["id"] in PROCESSING}


def words(stack: StackProcess) -> dict[str, int]:
    return {message_id: int(m.get("contentWords", 0)) for message_id, m in messages(stack).items()}


def answers(by_id: dict[str, dict]) -> dict[str, tuple]:
    return {
        message_id: (m["content"], m["contentWords"], m["contentUpdatedAt"])
        for message_id, m in by_id.items()
    }


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_after_the_users_stop_no_agent_writes_a_chunk_more_than_2_s_after_the_200(stack):
    assert "from a step watched by message-cancel-watch" in stack.output()  # the banner says so
    # The agents stream: every processing message's answer grows.
    assert wait_until(lambda: all(count >= 3 for count in words(stack).values()), WAIT_SECONDS)
    before = words(stack)
    assert wait_until(lambda: all(words(stack)[m] > before[m] for m in PROCESSING), WAIT_SECONDS)

    token = stack.devstack("token").stdout.strip()
    answer = http(
        "POST",
        f"{stack.origin}{CANCEL_PATH}",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        body={"projectId": DEMO_PROJECT},
    )
    answered = time.time()
    assert answer.status == 200
    assert sorted(answer.body["messageIds"]) == PROCESSING

    assert wait_until(
        lambda: all(m.get("executionStatus") == "ABORTED" for m in messages(stack).values()), WAIT_SECONDS
    )
    time.sleep(max(0.0, answered + LATE_CHUNK_SECONDS + 1.0 - time.time()))
    stopped = messages(stack)
    time.sleep(1.5)  # and nothing more comes
    assert answers(messages(stack)) == answers(stopped)
    for message_id, message in stopped.items():
        assert message["status"] == "cancelled"
        assert epoch(message["contentUpdatedAt"]) <= answered + LATE_CHUNK_SECONDS, message_id
        count = int(message["contentWords"])
        assert len(message["content"].split()) == count
        assert 0 < count < len(ANSWER.split())  # stopped mid-answer
        # The step itself says it was cancelled, after exactly the words the message holds.
        assert re.search(rf"\[agent\] {message_id}: cancelled after {count} words", stack.output())
