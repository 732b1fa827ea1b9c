"""`make stress`: fault loops on a real broker, too long for `make test`, and their table.

Each run of a loop adds one row to :data:`ROWS`; the table is printed after the session, passed
or not, so a failing run's figures are read beside the others.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

# The loops drive worker processes with the integration tests' helpers.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

ROWS: list[dict[str, Any]] = []
COLUMNS = (
    "fault", "run", "events", "events lost", "events twice",
    "windows lost", "windows changed", "windows extra",
    "scores differing", "alert messages differing", "duplicate opens",
    "offsets passed over", "refetches", "recovery s",
)  # fmt: skip
# Columns that must be 0 (or empty) in a run without a difference; refetches mend, not differ.
DIFFERENCES = COLUMNS[COLUMNS.index("events lost") : COLUMNS.index("refetches")]


@pytest.fixture(scope="session")
def reference(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The simulated file and one worker's outputs for it (computed once for all loops)."""
    from stress_kit import make_reference

    return make_reference(kafka_bootstrap, tmp_path_factory.mktemp("reference"))


@pytest.fixture
def stress_row() -> dict[str, Any]:
    """This run's row of the table (filled by the test, kept even when it fails)."""
    row: dict[str, Any] = {}
    ROWS.append(row)
    return row


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not ROWS:
        return
    write = terminalreporter.write_line
    write("")
    write("| " + " | ".join(COLUMNS) + " |")
    write("|" + "---|" * len(COLUMNS))
    for row in ROWS:
        write("| " + " | ".join(_cell(row.get(c)) for c in COLUMNS) + " |")
    runs = [r for r in ROWS if "windows lost" in r]
    bad = [r for r in runs if any(r.get(c) for c in DIFFERENCES)]
    write(f"{len(runs)} runs compared, {len(bad)} with a difference")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)
