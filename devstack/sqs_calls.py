"""The local stack's SQS: moto's, with the cost of a call kept to what the call needs.

moto serves every queue, table, bus and state machine of the stack from one process. Three of its
SQS paths cost time in proportion to everything a queue holds:

- ReceiveMessage checks each message it hands out against the queue's retention period by
  computing every attribute of the queue, the approximate counts included: three passes over
  the queue, reading the clock for each message, per message received;
- the visible messages are listed reading the clock twice per message in the queue;
- DeleteMessage looks for the receipt handle through the whole queue, then copies it.

With ten thousand stops of a bulk waiting in their queue, one receive of ten took seconds of
that process, and every other call of the stack (the user lane's queue, the tables, Step
Functions) waited for it. Here the retention check reads the retention period alone, the
visible messages are listed with one reading of the clock, and a delete stops at its message.
What SQS does is unchanged: visibility timeouts, delays, retention, receipt handles (an older
handle of a message still deletes it; a deleted one deletes nothing; an unknown one is refused),
redrive to the dead-letter queue.
"""

from __future__ import annotations

from moto.core.utils import unix_time, unix_time_millis
from moto.sqs.exceptions import ReceiptHandleIsInvalid
from moto.sqs.models import Message, Queue, SQSBackend


def _retained(backend: SQSBackend, queue_name: str, message: Message) -> bool:
    """moto's own rule (kept until sent + retention period), reading that one attribute."""
    retention_seconds: int = backend.get_queue(queue_name).message_retention_period  # type: ignore[attr-defined]
    sent_millis: int = message.sent_timestamp  # type: ignore[assignment]
    return retention_seconds + sent_millis / 1000 > unix_time()


def _visible(queue: Queue) -> list[Message]:
    """moto's `Queue.messages`: visible (past `visible_at`) and not delayed, at one moment."""
    now = unix_time_millis()
    return [
        message for message in queue._messages if now > message.visible_at and now >= message.delayed_until
    ]


def _delete(queue: Queue, receipt_handle: str) -> None:
    """moto's `Queue.delete_message`, stopping at the message that had the handle. The queue's
    list is replaced, not changed in place, as moto does: a receive going through it meanwhile
    reads the list it began with. Under the queue's lock, which moto's SendMessage takes to
    append: a message sent meanwhile is never lost with the old list."""
    if receipt_handle in queue.deleted_messages:
        return  # deleted already: SQS accepts it again
    with queue._messages_lock:
        messages = queue._messages
        for index, message in enumerate(messages):
            if message.had_receipt_handle(receipt_handle):
                queue._messages = messages[:index] + messages[index + 1 :]
                queue.pending_messages.discard(message)
                queue.deleted_messages.update(handle for handle in message.all_receipt_handles if handle)
                return
    raise ReceiptHandleIsInvalid


# What replaces what in moto: (its class, the attribute, the local stack's).
REPLACED: tuple[tuple[type, str, object], ...] = (
    (SQSBackend, "is_message_valid_based_on_retention_period", _retained),
    (Queue, "messages", property(_visible)),
    (Queue, "delete_message", _delete),
)


def keep_sqs_calls_short() -> None:
    """Install the three paths above in this process's moto, before its server starts."""
    for owner, name, replacement in REPLACED:
        setattr(owner, name, replacement)
