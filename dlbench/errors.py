"""The one error type for bad usage or bad input (exit code 2 at the CLI)."""


class DlbenchError(Exception):
    """Bad usage or bad input: the message is one line saying what is wrong and how to fix it."""
