"""`gridalarm dashboard` refuses bad options with one line, before it touches Kafka."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bind", "0.0.0.0:8080"], "also give --token TOKEN or --basic-auth USER:PASSWORD"),
        (["--bind", "8080"], "--bind '8080': give HOST:PORT"),
        (["--bind", "0.0.0.0:8080", "--token", "short"], "--token: use at least 16"),
        (["--token", "0123456789abcdef", "--basic-auth", "a:b"], "not both"),
        (["--backfill", "six hours"], "--backfill: 'six hours' is not a duration"),
        (["--keep", "0"], "--keep 0: give a number of windows"),
    ],
)
def test_bad_options_get_one_line(args: list[str], message: str) -> None:
    env = {**os.environ, "GRIDALARM_KAFKA": "127.0.0.1:9"}
    env.pop("GRIDALARM_DASHBOARD_TOKEN", None)
    env.pop("GRIDALARM_DASHBOARD_BASIC_AUTH", None)
    done = subprocess.run(
        [sys.executable, "-m", "gridalarm", "dashboard", *args],
        capture_output=True, text=True, cwd=REPO, timeout=60, env=env,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
