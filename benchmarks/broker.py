"""The broker a benchmark runs against: GRIDALARM_KAFKA, else a local one it starts and stops."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gridalarm.localkafka import LocalKafka, LocalKafkaConfig

STATE = Path(__file__).resolve().parents[1] / ".state" / "bench-kafka"


@contextmanager
def broker() -> Iterator[str]:
    """Yield a bootstrap address; stop the broker afterwards if this started it."""
    given = os.environ.get("GRIDALARM_KAFKA")
    if given:
        yield given
        return
    local = LocalKafka(LocalKafkaConfig(state_dir=STATE, port=49092, controller_port=49093))
    started = local.start()
    try:
        yield local.bootstrap
    finally:
        if started:
            local.stop()
