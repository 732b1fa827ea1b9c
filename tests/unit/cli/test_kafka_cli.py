"""`gridalarm kafka start --scram-user`: bad values are one line on stderr, exit 2, before Java
is looked for; a settings error about Kafka security is one line from any command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GRIDALARM_")}
    return subprocess.run(
        [sys.executable, "-m", "gridalarm", *args],
        capture_output=True, text=True, cwd=REPO, timeout=120,
        env={**clean, "GRIDALARM_KAFKA": "127.0.0.1:9", **env},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scram-user", "alice"], "--scram-user 'alice': give NAME:PASSWORD"),
        (["--scram-user", "al,ice:pw"], "SCRAM user name 'al,ice': use 1-64 of letters"),
        (["--scram-user", "alice:p=w"], "SCRAM user password '***'"),
        (["--scram-user", "a:pw", "--internal-port", "9093"], "--internal-port 9093 is also"),
    ],
)
def test_bad_scram_users_get_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    done = run("kafka", "start", "--state-dir", str(tmp_path), *args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert "p=w" not in done.stderr


def test_sasl_without_a_password_is_one_line_before_any_broker_is_asked() -> None:
    done = run(
        "alerts", "tail",
        GRIDALARM_KAFKA_SECURITY="sasl_ssl", GRIDALARM_KAFKA_USERNAME="alice",
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "gridalarm: settings: kafka_security: sasl_ssl needs a user name and a password; set "
        "GRIDALARM_KAFKA_PASSWORD"
    ]
