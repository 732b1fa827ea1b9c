"""Where tests find the project's shared data: ``../shared/data`` beside the checkout.

A test that needs a file of it calls :func:`require`, which fails (never skips) when the file is
missing: a skipped data test would let CI pass with the data untested.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def require(path: Path) -> Path:
    """``path`` if it exists; otherwise the test fails, saying where the data belongs."""
    if not path.exists():
        pytest.fail(
            f"{path} is missing: the tests read ../shared/data beside the checkout ({SHARED_DATA})",
            pytrace=False,
        )
    return path


def event_logs() -> list[Path]:
    """Every real HTCondor event log of the shared data (at least one, or the test fails)."""
    folder = require(SHARED_DATA / "htcondor-eventlogs")
    logs = sorted(p for p in folder.glob("*") if p.is_file() and not p.name.startswith("LICENSE"))
    if not logs:
        pytest.fail(f"no event log in {folder}", pytrace=False)
    return logs
