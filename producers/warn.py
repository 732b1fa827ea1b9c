"""How producers tell the operator about something they skipped or dead-lettered: one line."""

from __future__ import annotations

import sys
from collections.abc import Callable

Warn = Callable[[str], None]


def no_warning(message: str) -> None:
    """A :data:`Warn` that says nothing (tests, ``--quiet``)."""


def warn_to_stderr(message: str) -> None:
    """One warning line on stderr."""
    print(f"gridalarm: warning: {message}", file=sys.stderr, flush=True)


__all__ = ["Warn", "no_warning", "warn_to_stderr"]
