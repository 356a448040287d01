"""Stop an AI agent's running step within about a second of its message's cancel."""

from message_cancel_watch.watch import (
    DEFAULT_CONSISTENT_READ,
    DEFAULT_INTERVAL,
    AsyncCancelWatch,
    CancelWatch,
    MessageCancelled,
)

__all__ = [
    "DEFAULT_CONSISTENT_READ",
    "DEFAULT_INTERVAL",
    "AsyncCancelWatch",
    "CancelWatch",
    "MessageCancelled",
]
