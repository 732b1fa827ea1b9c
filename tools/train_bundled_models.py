"""Train the lstm-forecast artifacts that ship inside the package (``make bundled-models``).

One per window size the project runs at out of the box: 1-minute windows (the demo, tests)
and hourly windows (the default setting). Each learns from a simulated pool with no incidents
(seeds distinct from every evaluation's), so the shipped model never saw an evaluated incident.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from gridalarm.config import DEFAULT_FEATURES
from gridalarm.evaluation.evaluate import training_data
from gridalarm.evaluation.sources import SimulatedPool, simulated
from gridalarm.models.registry import BUNDLED_MODELS
from gridalarm.models.training import TrainConfig, train

POOLS = {
    60.0: SimulatedPool(streams=20, days=4.0, window=60.0, seed=201),
    3600.0: SimulatedPool(streams=20, days=90.0, window=3600.0, seed=202),
}


def main() -> None:
    for window, pool in POOLS.items():
        out = BUNDLED_MODELS / f"lstm-forecast-{window:g}s"
        if out.exists():
            shutil.rmtree(out)
        data = training_data(simulated(pool, DEFAULT_FEATURES), labelled=False)
        result = train(data, TrainConfig(), out, progress=sys.stderr.isatty())
        t = result.artifact.metadata["training"]
        print(
            f"{out}: {t['streams']} streams x {t['windows'] // t['streams']} windows, "
            f"{t['epochs_run']} epochs, val loss {t['val_loss']:.4f}, {result.seconds:.0f}s"
        )
    # Training curves are for people reading a trained artifact, not for the package.
    for png in Path(BUNDLED_MODELS).glob("*/training.png"):
        png.unlink()


if __name__ == "__main__":
    main()
