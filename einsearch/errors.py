"""The root of every error the project raises on purpose.

Each carries a message that fits on one line and names what is wrong and where (a grammar
position, a field, a file). The CLI catches `EinsearchError` in one place, prints the message and
exits with `exit_code`: 2 for bad input (the default), 1 for a failure of the work itself.
"""
from __future__ import annotations


class EinsearchError(Exception):
    exit_code = 2


class UsageError(EinsearchError, ValueError):
    """A bad argument or option value given to the library or the CLI."""
