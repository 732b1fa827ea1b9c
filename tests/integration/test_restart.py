"""Restart on a real broker: SIGKILL the worker mid-replay, start another, compare with a clean run.

What at-least-once means here: the worker commits a partition's offset every second, and only
up to what the broker has the outputs and then the state of (a table backed by a changelog
topic). A worker killed with SIGKILL therefore leaves (a) messages after the last commit,
which the next worker reads again, and (b) possibly outputs published after the last state
write, which the next worker publishes again. The state records carry the offset of the last
message applied, so a re-read message changes no state, and the logic is deterministic, so
anything published again is identical to what was published before. A consumer of the output
topics may see a window, a score or an alert message twice, never two different versions of
one, and never misses one. Windows are keyed by (stream, start) and alerts by ``alert_id``,
which is what such a consumer dedupes on.

The state, not the group's committed offset, says where a partition resumes: the group's commit
can be ahead of it (Faust's own commits passed messages it skipped, before the worker took
commits over; an operator may reset offsets). Before the second worker starts, the test moves
the group's committed offsets 500 past the state on every partition with messages left; the
second worker must resume each partition where its state says, and lose nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline_kit import (
    assert_same_outputs,
    commit_offsets,
    committed,
    committed_offsets,
    end_offsets,
    gridalarm,
    published,
    second_prefix,
    wait_for_worker,
    wait_until,
    worker_group,
    worker_process,
)

from gridalarm.config import Settings

pytestmark = pytest.mark.integration

WINDOW = 60.0
# The killed worker stays a member of the consumer group until its session times out, and the
# next worker's join waits for that: Faust's default session timeout (60 s) would be most of
# this test's run time. Faust reads BROKER_SESSION_TIMEOUT from the environment.
SESSION = {"BROKER_SESSION_TIMEOUT": "10"}
AHEAD = 500  # offsets the group's commit is moved past the state before the second worker


@pytest.fixture
def settings(kafka_settings: Settings) -> Settings:
    return kafka_settings.model_copy(update={"window": WINDOW})


@pytest.fixture
def clean_settings(settings: Settings) -> Iterator[Settings]:
    """The same settings on a second topic prefix (its own topics and worker group)."""
    with second_prefix(settings, "clean") as other:
        yield other


def test_sigkilled_worker_is_resumed_by_a_new_one_without_losing_or_changing_windows_or_alerts(
    settings: Settings, clean_settings: Settings, tmp_path: Path
) -> None:
    sim = tmp_path / "sim"
    gridalarm(
        settings,
        "simulate", "--streams", "10", "--days", "0.4", "--window", "1m",
        "--incidents", "outage,hold_storm,disconnect_storm", "--seed", "23", "--out", str(sim),
    )  # fmt: skip
    events = sim / "events.jsonl"
    gridalarm(settings, "produce", "replay", str(events), "--speed", "max", "--quiet")
    total = end_offsets(settings, "events")
    assert 20_000 < total < 100_000
    group = worker_group(settings)

    # -- the first worker: killed once it has committed some but not all of the events ---------
    with worker_process(settings, tmp_path / "worker-1.log", **SESSION) as first:

        def some_committed() -> bool:
            assert first.poll() is None, f"the first worker exited with {first.returncode}"
            return committed(settings, group) >= total // 3

        wait_until(some_committed, 180, "the first worker to commit a third of the events", 0.1)
        first.kill()  # SIGKILL: no flush, no commit, no changelog write after this
        first.wait()
    at_kill = committed(settings, group)
    assert 0 < at_kill < total, (
        f"the first worker committed {at_kill} of {total} before the kill: make the data larger"
    )
    assert end_offsets(settings, "windows") > 0, "the first worker published no window"
    ahead = {
        partition: min((offset or 0) + AHEAD, end)
        for partition, (offset, end) in enumerate(committed_offsets(settings, group))
        if (offset or 0) < end
    }
    commit_offsets(settings, group, ahead)  # waits for the killed member's session to end

    # -- a second worker with the same id (group, tables) takes over -----------------------------
    with worker_process(settings, tmp_path / "worker-2.log", **SESSION) as second:
        wait_for_worker(settings, second, timeout=300)
    assert (
        "resuming partitions at the offsets their state" in (tmp_path / "worker-2.log").read_text()
    )

    # -- a clean single-worker run of the same file on other topics ------------------------------
    gridalarm(clean_settings, "produce", "replay", str(events), "--speed", "max", "--quiet")
    with worker_process(clean_settings, tmp_path / "worker-clean.log") as clean:
        wait_for_worker(clean_settings, clean, timeout=300)

    ours, reference = published(settings), published(clean_settings)
    assert reference.windows and reference.opened, (
        "the clean run has no windows or no alerts to compare"
    )
    assert all(len(v) == 1 for v in reference.windows.values())
    assert_same_outputs(ours, reference)
