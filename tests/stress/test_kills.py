"""One replay whose worker is SIGKILLed again and again: no window, score or alert may change.

The simulated file of the other loops is replayed to a fresh prefix. A worker consumes it and
is SIGKILLed once the group has committed each of ``GRIDALARM_STRESS_KILLS`` (10) random
shares of it, a fresh worker taking over after each kill; the last one finishes. Each worker
must commit something before it is killed (its recovery, timed), so the replay moves on.
Every window, score and alert message is then compared with one worker's undisturbed run
(issue 12: "the worker SIGKILLed 10 times at random points of one replay").

The kill points come from a seeded generator (``GRIDALARM_STRESS_SEED``, default: the run
number), printed in the table's fault column so that a failing run can be repeated.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import pytest
from pipeline_kit import partition_progress, wait_for_worker, wait_until, worker_process
from stress_kit import SESSION, Reference, compare_run, replay

from gridalarm.config import Settings

pytestmark = pytest.mark.integration

KILLS = int(os.environ.get("GRIDALARM_STRESS_KILLS", "10"))
KILL_RUNS = int(os.environ.get("GRIDALARM_STRESS_KILL_RUNS", "1"))


@pytest.mark.parametrize("run", range(KILL_RUNS))
def test_a_worker_killed_again_and_again_changes_nothing(
    run: int,
    reference: Reference,
    kafka_settings: Settings,
    tmp_path: Path,
    stress_row: dict[str, Any],
) -> None:
    seed = int(os.environ.get("GRIDALARM_STRESS_SEED", str(run)))
    rng = random.Random(seed)
    points = sorted(rng.uniform(0.02, 0.9) for _ in range(KILLS))
    stress_row.update(fault=f"{KILLS} SIGKILLs in one replay (seed {seed})", run=run)
    replayed = replay(kafka_settings, reference, stress_row)
    settings, total = replayed.settings, replayed.total

    recoveries: list[float] = []  # each kill to the next worker's first commit
    killed_at: float | None = None
    history: list[str] = []

    def recovered(worker: Any) -> None:
        first = replayed.committed_at_least(replayed.committed() + 1, worker)
        wait_until(first, 300, "the next worker's first commit", 0.05)
        if killed_at is not None:
            recoveries.append(time.monotonic() - killed_at)

    for k, share in enumerate(points):
        with worker_process(settings, tmp_path / f"worker-{k:02d}.log", **SESSION) as worker:
            recovered(worker)
            reached = replayed.committed_at_least(share * total, worker)
            wait_until(reached, 300, f"worker {k} to commit {share:.2f}", 0.05)
            assert replayed.committed() < total, "all committed before the kill: more data"
            worker.kill()
            worker.wait(timeout=60)
            killed_at = time.monotonic()
            history.append(f"kill {k} at {share:.3f}: {partition_progress(settings)}")
    with worker_process(settings, tmp_path / "worker-last.log", **SESSION) as last:
        recovered(last)
        wait_for_worker(settings, last, timeout=300)
    stress_row["recovery s"] = max(recoveries)  # the worst of the kills
    compare_run(settings, reference, tmp_path, stress_row, "\n".join(history))
