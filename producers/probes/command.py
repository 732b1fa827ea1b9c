"""The ``command`` probe: run a program every interval; each JSON line it prints is a message.

The shortest way to plug a site's own script in without writing Python: the script prints one
event or gauge per line (the event message of DESIGN.md; ``v`` and ``source`` may be left out,
``ts`` defaults to the poll time), for example::

    {"stream": "schedd:fifebatch1", "metrics": {"idle": 1200, "running": 5400, "held": 31}}

A line that is not a JSON object is dead-lettered with its reason; a program that fails or
runs past ``timeout`` makes a failed poll (a warning), and the next poll runs as usual.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Iterable
from typing import Any

import orjson

from gridalarm.producers.probe import Duration, Probe, ProbeError, ProbeOptions
from gridalarm.timeutil import format_time


class CommandOptions(ProbeOptions):
    run: str  # the command line, split like a shell would (no shell features)
    timeout: Duration = 30.0


class Command(Probe):
    """Run a command each interval and send the JSON lines it prints."""

    summary = "run a command every interval; each JSON line it prints is an event or gauge"
    Options = CommandOptions
    interval = 60.0
    options: CommandOptions

    def poll(self, now: float) -> Iterable[Any]:
        argv = shlex.split(self.options.run)
        if not argv:
            raise ProbeError("run: give a command, e.g. run='condor_q -totals -json'")
        try:
            done = subprocess.run(
                argv, capture_output=True, timeout=self.options.timeout, check=False
            )
        except FileNotFoundError:
            raise ProbeError(f"{argv[0]}: no such program") from None
        except subprocess.TimeoutExpired:
            raise ProbeError(f"{argv[0]} ran past {self.options.timeout:g}s") from None
        if done.returncode != 0:
            err = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise ProbeError(f"{argv[0]} exited {done.returncode}: {err[-1] if err else ''}")
        return [self._message(line, now) for line in done.stdout.splitlines() if line.strip()]

    def _message(self, line: bytes, now: float) -> Any:
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            return line  # as printed: the runner dead-letters it as bad JSON
        if isinstance(message, dict):
            message.setdefault("v", 1)
            message.setdefault("ts", format_time(now))
            message.setdefault("source", self.context.source)
        return message


__all__ = ["Command", "CommandOptions"]
