"""LOCAL STAND-IN for the agent's own compute (the Lambda task a real agent's state machine runs):
moto cannot run the agent's task, so for each demo execution the stack runs its step
(devstack.agent.answer) on a thread of its own, as a Lambda container runs one invocation, for as
long as the execution's StreamingAnswer state lasts. The step stops when message-cancel-watch
sees its message cancelled; the execution is stopped by the service's stopper (ABORTED)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from devstack.agent.answer import ModelStream, StepOutcome, stream_answer
from devstack.background import Background

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class AgentTaskWorker:
    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table_name: Callable[[str], str],
        background: Background,
        log: Callable[[str], None],
    ) -> None:
        """`table_name` names the template's tables by logical id (read when a step starts: a
        template without a MessagesTable has no demo and no steps)."""
        self._dynamodb, self._table_name = dynamodb, table_name
        self._background, self._log = background, log
        self._lock = threading.Lock()
        self._streams: dict[str, ModelStream] = {}  # message id -> the stream of its running step
        self.outcomes: list[StepOutcome] = []  # every ended step, in the order they ended

    def answer_seconds(self) -> int:
        """How long a step streams its whole answer: the length of its execution."""
        return ModelStream.seconds()

    def start(self, message_id: str) -> None:
        """Run the step of a new execution working on `message_id`."""
        stream = ModelStream(stack_stopping=self._background.stopping)
        with self._lock:
            # A demo reset starts a new execution for the same message: the old step stops.
            previous = self._streams.get(message_id)
            self._streams[message_id] = stream
        if previous is not None:
            previous.close()
        self._background.spawn(self._run, f"agent-step-{message_id}", message_id, stream)

    def _run(self, message_id: str, stream: ModelStream) -> None:
        try:
            outcome = stream_answer(self._dynamodb, self._table_name("MessagesTable"), message_id, stream)
        except Exception as error:  # noqa: BLE001 - one step's failure is logged, not the stack's
            self._log(f"! agent step of {message_id}: {type(error).__name__}: {error}")
            return
        finally:
            with self._lock:
                if self._streams.get(message_id) is stream:
                    del self._streams[message_id]
        self.outcomes.append(outcome)
        self._log(f"[agent] {message_id}: {outcome.ended} after {outcome.words} words")
