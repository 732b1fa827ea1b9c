"""Retry timing and HTTP verdicts (gridalarm.stream.routing.backoff)."""

from __future__ import annotations

import pytest

from gridalarm.stream.routing.backoff import RetryPolicy, verdict


def test_delays_grow_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(initial=0.5, factor=2.0, max_delay=30.0, jitter=0.0)
    assert [policy.delay(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert policy.delay(10_000) == 30.0  # no float overflow on a target down for days


def test_jitter_takes_off_at_most_its_share() -> None:
    policy = RetryPolicy(initial=1.0, factor=2.0, max_delay=8.0, jitter=0.25)
    assert policy.delay(3, draw=0.0) == 4.0
    assert policy.delay(3, draw=0.5) == 3.5
    assert policy.delay(3, draw=0.999) == pytest.approx(3.001)
    assert policy.delay(9, draw=0.999) == pytest.approx(6.002)


@pytest.mark.parametrize(
    "kwargs",
    [{"initial": 0}, {"factor": 0.5}, {"max_delay": 0.1}, {"jitter": 1.0}, {"jitter": -0.1}],
)
def test_nonsense_policies_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError):
        RetryPolicy().delay(0)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, "accepted"), (202, "accepted"), (204, "accepted"),
        (400, "refused"), (413, "refused"), (415, "refused"), (422, "refused"),
        (401, "retry"), (403, "retry"), (404, "retry"), (408, "retry"), (429, "retry"),
        (500, "retry"), (502, "retry"), (503, "retry"), (301, "retry"),
    ],
)  # fmt: skip
def test_what_each_status_means(status: int, expected: str) -> None:
    assert verdict(status) == expected
