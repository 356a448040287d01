"""The local stack's stand-in agent step (devstack.agent.answer) against moto: it streams its
answer into the message, completes it when the answer ends, and stops mid-answer, writing nothing
more, when the message is cancelled or the stack stops."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from devstack.agent.answer import ModelStream, stream_answer

MESSAGE = "k58streamed0001"
SHORT = "One two three. Four five six."
LONG = " ".join(f"word{number}" for number in range(2000))
BOUNDED = 30.0


def table_of(store) -> str:
    return str(store.table_names["MessagesTable"])


def test_a_whole_answer_is_streamed_then_the_message_completed(store):
    store.put_message(MESSAGE)
    stream = ModelStream(threading.Event(), text=SHORT, words_per_second=1000)
    outcome = stream_answer(store.dynamodb, table_of(store), MESSAGE, stream)
    assert outcome.ended == "completed"
    assert outcome.words == 6
    assert len(outcome.chunk_times) == 6
    message = store.message(MESSAGE)
    assert message["status"] == "completed"
    assert message["content"] == SHORT


def test_a_message_that_left_processing_is_not_completed_over(store):
    store.put_message(MESSAGE, status="failed")
    stream = ModelStream(threading.Event(), text=SHORT, words_per_second=1000)
    outcome = stream_answer(store.dynamodb, table_of(store), MESSAGE, stream)
    assert outcome.ended == "left processing"
    assert store.status(MESSAGE) == "failed"


def test_a_cancel_stops_the_step_mid_answer_and_no_word_is_written_after(store):
    store.put_message(MESSAGE)
    stream = ModelStream(threading.Event(), text=LONG, words_per_second=200)
    with ThreadPoolExecutor(1) as pool:
        step = pool.submit(stream_answer, store.dynamodb, table_of(store), MESSAGE, stream)
        while "content" not in store.message(MESSAGE):
            assert not step.done()
        store.dynamodb.update_item(
            TableName=table_of(store),
            Key={"id": {"S": MESSAGE}},
            UpdateExpression="SET #s = :c",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":c": {"S": "cancelled"}},
        )
        outcome = step.result(timeout=BOUNDED)
    assert outcome.ended == "cancelled"
    assert stream.closed  # the watch's callback closed the model's stream
    message = store.message(MESSAGE)
    assert 0 < outcome.words < 2000
    assert message["content"] == " ".join(LONG.split()[: outcome.words])
    assert message["status"] == "cancelled"


def test_the_stack_stopping_interrupts_the_step_without_completing_the_message(store):
    store.put_message(MESSAGE)
    stack_stopping = threading.Event()
    stack_stopping.set()
    outcome = stream_answer(store.dynamodb, table_of(store), MESSAGE, ModelStream(stack_stopping, text=SHORT))
    assert outcome.ended == "interrupted"
    assert outcome.words == 0
    assert store.status(MESSAGE) == "processing"
