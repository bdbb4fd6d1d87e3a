"""Errors that mean the user asked for something that cannot be done.

The CLI prints a `UserError` as one message and exits 2, never with a traceback. Anything else is a
runtime failure: exit 1 with the message and the path of the log file.
"""


class UserError(Exception):
    """Bad input or a refused request: the message alone tells the user what to do."""


class RunLocked(UserError):
    """Another process holds the run directory."""
