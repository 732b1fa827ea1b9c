"""When to try a delivery again, and which answers are final. Pure: no clock, no randomness.

A target that fails is retried with exponential backoff, capped, with jitter so that several
notifiers (or targets) that failed together do not retry in step. Retries never give up on
their own: an offset is committed only after every target accepted its message, and a later
alert must not overtake an earlier one (an ``open`` arriving after its ``resolved`` would page
for an incident that is over). An operator sees the failures in the log and mends the target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Verdict = Literal["accepted", "retry", "refused"]

# Answers that say the request's content is wrong: sending it again cannot change them. Every
# other failure is retried: 5xx, 408, 429, and also 401, 403 and 404, which mean a target's
# setup (credentials, path) that an operator can mend while the alerts wait.
REFUSED = frozenset({400, 413, 415, 422})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff: ``initial`` × ``factor`` ** (attempt - 1), at most ``max_delay``."""

    initial: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.2  # up to this share of a delay is taken off at random

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.factor < 1 or self.max_delay < self.initial:
            raise ValueError("retry policy: need initial > 0, factor >= 1, max_delay >= initial")
        if not 0 <= self.jitter < 1:
            raise ValueError("retry policy: jitter must be in [0, 1)")

    def delay(self, attempt: int, draw: float = 0.0) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1, 2, ...); ``draw`` is a
        random number in [0, 1) that picks the jitter."""
        if attempt < 1:
            raise ValueError("attempts count from 1")
        # Cap the exponent before computing it: 2.0 ** 5000 overflows a float.
        steps = min(attempt - 1, 64)
        base = min(self.initial * self.factor**steps, self.max_delay)
        return base * (1.0 - self.jitter * draw)


def verdict(status: int) -> Verdict:
    """What an HTTP status means for a delivery."""
    if 200 <= status < 300:
        return "accepted"
    if status in REFUSED:
        return "refused"
    return "retry"
