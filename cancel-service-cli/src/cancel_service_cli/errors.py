"""The one error of the operator's commands."""


class CommandError(Exception):
    """The command cannot go on; the message says why (exit 1)."""
