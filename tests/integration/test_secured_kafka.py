"""The commands against a broker that wants TLS and SCRAM: its own local broker, secured.

A LocalKafka whose client port speaks SASL_SSL (SCRAM users made at format time, a keytool-made
test CA under its state dir; see gridalarm.localkafka_security) on ports 39292-39294 (override
with GRIDALARM_TEST_SECURE_KAFKA_PORT), stopped at the end of the module. Against it, with the
GRIDALARM_KAFKA_* settings: `produce replay` of a small simulated file, a worker that windows it
(Faust's consumer, producer and changelog over SASL_SSL), `alerts tail` and `notify` of alerts
written here; then the failures an operator meets: a wrong password, a plaintext client at the
TLS port, a CA that is not given. Each is one line on stderr and exit status 2, in bounded time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pipeline_kit import REPO_ROOT, stop, wait_until, worker_process
from routing_kit import receiver

from gridalarm.compacted import write_compacted
from gridalarm.config import Settings
from gridalarm.history import read_topic
from gridalarm.kafka_auth import KafkaAccess
from gridalarm.localkafka import LocalKafka, LocalKafkaConfig
from gridalarm.localkafka_security import BrokerSecurity, ScramUser
from gridalarm.messages import alert_id, validate
from gridalarm.timeutil import format_time
from gridalarm.topics import ensure_topics

pytestmark = pytest.mark.integration

PORT = int(os.environ.get("GRIDALARM_TEST_SECURE_KAFKA_PORT", "39292"))
USER, PASSWORD = "alice", "alice-Secret-1"
# A failing command must be done well within this (its own broker wait is 10 s).
FAIL_WITHIN = 30.0


@pytest.fixture(scope="module")
def secured(
    tmp_path_factory: pytest.TempPathFactory, local_kafka_jars: Path
) -> Iterator[KafkaAccess]:
    """A secured local broker for this module, and how clients reach it."""
    broker = LocalKafka(
        LocalKafkaConfig(
            state_dir=tmp_path_factory.mktemp("secured-kafka"),
            port=PORT,
            controller_port=PORT + 1,
            jars_dir=local_kafka_jars,
            security=BrokerSecurity(users=(ScramUser(USER, PASSWORD),), internal_port=PORT + 2),
        )
    )
    broker.start()
    try:
        assert broker.ca_pem is not None and broker.ca_pem.is_file()
        yield KafkaAccess(
            broker.bootstrap, "sasl_ssl", "SCRAM-SHA-256", USER, PASSWORD, broker.ca_pem
        )
    finally:
        broker.stop()


@pytest.fixture
def settings(secured: KafkaAccess, tmp_path: Path) -> Settings:
    """This test's topics on the secured broker (the security itself goes in by environment)."""
    return Settings(
        kafka=secured.bootstrap,
        topic_prefix=f"sec-{uuid.uuid4().hex[:8]}",
        partitions=4,
        window=60.0,
        state_dir=tmp_path / "state",
    )


def security_env(access: KafkaAccess, **changes: str) -> dict[str, str]:
    """GRIDALARM_KAFKA_* for ``access``, with ``changes`` on top (e.g. a wrong password)."""
    env = {
        "GRIDALARM_KAFKA_SECURITY": access.security,
        "GRIDALARM_KAFKA_SASL_MECHANISM": access.mechanism,
        "GRIDALARM_KAFKA_USERNAME": access.username or "",
        "GRIDALARM_KAFKA_PASSWORD": access.password or "",
        "GRIDALARM_KAFKA_CA": str(access.ca or ""),
        "GRIDALARM_DETECTOR": "baseline",  # no model to load: the tests are about Kafka
    }
    env.update(changes)
    return env


def run(settings: Settings | None, args: list[str], env: dict[str, str], timeout: float = 120):
    """A gridalarm command with these settings (None: no Kafka settings) and ``env`` on top;
    (the completed process, the seconds it took)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("GRIDALARM_")}
    if settings is not None:
        full.update(
            GRIDALARM_KAFKA=str(settings.kafka),
            GRIDALARM_TOPIC_PREFIX=settings.topic_prefix,
            GRIDALARM_PARTITIONS=str(settings.partitions),
            GRIDALARM_WINDOW=str(settings.window),
            GRIDALARM_STATE_DIR=str(settings.state_dir),
            GRIDALARM_WORKER_ID=f"{settings.topic_prefix}-worker",
        )
    full.update(env)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "gridalarm", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
    )
    return done, time.monotonic() - started


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated pool (3 streams, 2.4 h of 1-minute windows) as a JSONL file."""
    out = tmp_path_factory.mktemp("sim")
    done, _ = run(
        None,
        ["simulate", "--streams", "3", "--days", "0.1", "--window", "1m", "--seed", "7",
         "--quiet", "--out", str(out)],
        {},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out / "events.jsonl"


def an_alert(k: int) -> dict[str, Any]:
    since = 1_767_600_000.0
    message = {
        "v": 1,
        "alert_id": alert_id(f"schedd:secure{k}", since, "baseline@2"),
        "state": "open",
        "stream": f"schedd:secure{k}",
        "since": format_time(since),
        "start": format_time(since),
        "end": format_time(since + 60),
        "score": 93.0,
        "severity": "critical",
        "explain": [{"feature": "JobHeldEvent", "observed": 400, "expected": 20.0, "share": 0.9}],
        "model": "baseline@2",
    }
    validate("alert", message)
    return message


def test_replay_worker_alerts_tail_and_notify_over_sasl_ssl(
    secured: KafkaAccess, settings: Settings, simulated: Path, tmp_path: Path
) -> None:
    env = security_env(secured)
    done, _ = run(settings, ["produce", "replay", str(simulated), "--quiet"], env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("replayed 3329 messages")

    with worker_process(settings, tmp_path / "worker.log", **env) as worker:

        def windows() -> int:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-2000:]
            return sum(1 for _ in read_topic(secured, settings.topic("windows"), idle_ms=1000))

        wait_until(lambda: windows() > 0, 120, "windows from the worker over SASL_SSL")

    # Alerts written here (with the same security, by kafka-python): what is checked is that
    # the reading commands get them through TLS and SCRAM.
    alerts = [an_alert(1), an_alert(2)]
    ensure_topics(settings, secured)
    for alert in alerts:
        write_compacted(secured, settings.topic("alerts"), alert["stream"].encode(),
                        orjson.dumps(alert))  # fmt: skip
    done, _ = run(settings, ["alerts", "tail", "--from-beginning", "--until-idle", "3", "--json"],
                  env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    tailed = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert [a["alert_id"] for a in tailed] == [a["alert_id"] for a in alerts]

    full = {k: v for k, v in os.environ.items() if not k.startswith("GRIDALARM_")}
    full.update(GRIDALARM_KAFKA=secured.bootstrap, GRIDALARM_TOPIC_PREFIX=settings.topic_prefix,
                **env)  # fmt: skip
    with receiver() as hook, (tmp_path / "notify.log").open("ab") as log:
        notify = subprocess.Popen(
            [sys.executable, "-m", "gridalarm", "notify", "--to", f"webhook={hook.url}",
             "--group", f"{settings.topic_prefix}-notify"],
            env=full, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
        )  # fmt: skip
        try:

            def delivered() -> set[str]:
                assert notify.poll() is None, (tmp_path / "notify.log").read_text()[-2000:]
                with hook.lock:
                    return {r.body["alert_id"] for r in hook.requests if r.status == 200}

            wait_until(lambda: delivered() == {a["alert_id"] for a in alerts}, 60,
                       "notify to deliver both alerts", 0.5)  # fmt: skip
        finally:
            stop(notify)


COMMANDS = {
    "produce": ["produce", "replay", "{file}", "--quiet"],
    "worker": ["worker"],
    "alerts tail": ["alerts", "tail", "--until-idle", "3"],
    "notify": ["notify", "--to", "webhook=http://127.0.0.1:9/hook"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_wrong_password_is_one_line_and_a_quick_exit(
    secured: KafkaAccess, settings: Settings, simulated: Path, command: str
) -> None:
    args = [arg.replace("{file}", str(simulated)) for arg in COMMANDS[command]]
    done, seconds = run(settings, args, security_env(secured, GRIDALARM_KAFKA_PASSWORD="wrong-pw"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"gridalarm: Kafka at {secured.bootstrap} refused the credentials of user 'alice' "
        "(SCRAM-SHA-256): check GRIDALARM_KAFKA_USERNAME and GRIDALARM_KAFKA_PASSWORD (and "
        "GRIDALARM_KAFKA_SASL_MECHANISM)"
    ]
    assert "wrong-pw" not in done.stderr + done.stdout
    assert seconds < FAIL_WITHIN


def test_an_unknown_user_is_refused_the_same_way(secured: KafkaAccess, settings: Settings) -> None:
    env = security_env(secured, GRIDALARM_KAFKA_USERNAME="mallory")
    done, seconds = run(settings, ["alerts", "tail", "--until-idle", "3"], env)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"gridalarm: Kafka at {secured.bootstrap} refused the credentials of user 'mallory' "
        "(SCRAM-SHA-256): check GRIDALARM_KAFKA_USERNAME and GRIDALARM_KAFKA_PASSWORD (and "
        "GRIDALARM_KAFKA_SASL_MECHANISM)"
    ]
    assert seconds < FAIL_WITHIN


def test_scram_sha_512_works_too(secured: KafkaAccess, settings: Settings) -> None:
    env = security_env(secured, GRIDALARM_KAFKA_SASL_MECHANISM="SCRAM-SHA-512")
    done, _ = run(settings, ["alerts", "tail", "--until-idle", "2"], env)
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("alerts tail: idle for 2s")


def test_a_plaintext_client_at_the_tls_port_is_told_to_use_tls(
    secured: KafkaAccess, settings: Settings
) -> None:
    env = {"GRIDALARM_DETECTOR": "baseline"}  # no GRIDALARM_KAFKA_*: plaintext
    done, seconds = run(settings, ["alerts", "tail", "--until-idle", "3"], env)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"gridalarm: Kafka at {secured.bootstrap} expects TLS but GRIDALARM_KAFKA_SECURITY is "
        "plaintext: set it to ssl or sasl_ssl (and GRIDALARM_KAFKA_CA)"
    ]
    assert seconds < FAIL_WITHIN


def test_a_broker_certificate_from_an_unknown_ca_is_one_line(
    secured: KafkaAccess, settings: Settings
) -> None:
    env = security_env(secured, GRIDALARM_KAFKA_CA="")  # the system's CAs: ours is not one
    done, seconds = run(settings, ["worker"], env)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"gridalarm: Kafka at {secured.bootstrap}: its TLS certificate is not "
                           "trusted (")  # fmt: skip
    assert line.endswith("set GRIDALARM_KAFKA_CA to the CA file that signed it")
    assert seconds < FAIL_WITHIN


def test_the_dashboard_reads_over_sasl_ssl_and_wants_its_token(
    secured: KafkaAccess, settings: Settings, tmp_path: Path
) -> None:
    import httpx

    token = "dash-" + uuid.uuid4().hex
    alert = an_alert(3)
    ensure_topics(settings, secured)
    write_compacted(secured, settings.topic("alerts"), alert["stream"].encode(),
                    orjson.dumps(alert))  # fmt: skip
    full = {k: v for k, v in os.environ.items() if not k.startswith("GRIDALARM_")}
    full.update(GRIDALARM_KAFKA=secured.bootstrap, GRIDALARM_TOPIC_PREFIX=settings.topic_prefix,
                GRIDALARM_DASHBOARD_TOKEN=token, **security_env(secured))  # fmt: skip
    with (tmp_path / "dashboard.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gridalarm", "dashboard", "--bind", "127.0.0.1:0",
             "--backfill", "1h"],
            env=full, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=log,
        )  # fmt: skip
    try:
        line = proc.stdout.readline().decode() if proc.stdout else ""
        assert line.startswith("dashboard on "), (tmp_path / "dashboard.log").read_text()[-2000:]
        url = line.split()[2].rstrip("/")
        assert httpx.get(f"{url}/api/alerts").status_code == 401
        assert httpx.get(f"{url}/api/alerts", params={"token": "wrong-" * 4}).status_code == 401
        bearer = {"Authorization": f"Bearer {token}"}

        def shown() -> bool:
            assert proc.poll() is None, (tmp_path / "dashboard.log").read_text()[-2000:]
            response = httpx.get(f"{url}/api/alerts", headers=bearer)
            assert response.status_code == 200
            return alert["alert_id"] in response.text

        wait_until(shown, 60, "the dashboard to show the alert read over SASL_SSL", 0.5)
    finally:
        stop(proc)


def test_a_state_dir_formatted_with_other_users_is_refused(tmp_path: Path) -> None:
    from gridalarm.localkafka import LocalKafkaError

    config = LocalKafkaConfig(
        state_dir=tmp_path,
        port=PORT + 3,
        controller_port=PORT + 4,
        security=BrokerSecurity(users=(ScramUser("carol", "carol-pw"),), internal_port=PORT + 5),
    )
    data = tmp_path / "kafka" / "data"
    data.mkdir(parents=True)
    (data / "meta.properties").write_text("formatted earlier, without SCRAM users\n")
    with pytest.raises(LocalKafkaError) as caught:
        LocalKafka(config).start()
    assert str(caught.value) == (
        f"the local Kafka in {tmp_path / 'kafka'} was formatted with SCRAM users (none), not "
        "carol; use a fresh --state-dir for other users"
    )
