"""``evaluate --via-kafka``: the same evaluation, through a real broker and a real worker.

The data file is replayed into the events topic of a fresh topic prefix, a ``gridalarm worker``
process windows and scores it with the same model, and the scores and alerts topics are read
back into the runs the metrics need. The in-process run is made beside it, and the result says
how far the two sets of scores are apart (they must agree: one code path scores a window).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from gridalarm.config import Settings
from gridalarm.evaluation.datasets import LabelledSet
from gridalarm.evaluation.evaluate import (
    WARMING,
    Evaluation,
    EvaluationConfig,
    evaluate,
    has_split,
    model_path,
    point_f1_best,
    run_config,
    scored_part,
    warmup_groups,
)
from gridalarm.evaluation.metrics import detection_metrics
from gridalarm.evaluation.runner import StreamRun, window_of
from gridalarm.evaluation.standard import summary
from gridalarm.history import read_topic
from gridalarm.kafka_auth import KafkaAccess
from gridalarm.timeutil import parse_time


class ViaKafkaError(ValueError):
    """The round trip did not complete; the message says where it stopped (one line)."""


def _tail(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return f": {lines[-1].strip()}" if lines else ""


def evaluate_via_kafka(
    data: LabelledSet,
    data_path: Path,
    config: EvaluationConfig,
    workdir: Path,
    settings: Settings,
    timeout: float = 900.0,
) -> tuple[dict[str, Any], Evaluation]:
    """Metrics from the worker's own scores topic, plus their distance from the in-process run."""
    from gridalarm.topics import ensure_topics, resolve_kafka

    path = model_path(config, data, workdir)  # trains one first if the data has a split
    local = evaluate(data, replace(config, model=path), workdir)
    run = run_config(config)
    warmup = config.options.warmup
    if config.detector in WARMING and has_split(data):
        # One worker has one warmup setting: the in-process run's, which is the split's.
        groups = warmup_groups(data)
        if len(groups) > 1:
            raise ValueError(
                f"{data_path}: its streams have training parts of different lengths "
                f"({', '.join(str(w) for w, _ in groups)} windows), but one worker has one "
                "warmup; replay one stream per file"
            )
        warmup = groups[0][0]
    prefix = f"eval-{uuid.uuid4().hex[:8]}"
    bootstrap = resolve_kafka(settings)
    run_settings = settings.model_copy(
        update={
            "kafka": bootstrap.bootstrap,
            "topic_prefix": prefix,
            "worker_id": f"{prefix}-worker",
        }
    )
    ensure_topics(run_settings, bootstrap)
    env = {
        **os.environ,
        "GRIDALARM_KAFKA": bootstrap.bootstrap,  # the GRIDALARM_KAFKA_* security: inherited
        "GRIDALARM_TOPIC_PREFIX": prefix,
        "GRIDALARM_WORKER_ID": f"{prefix}-worker",
        "GRIDALARM_WINDOW": str(data.window),
        "GRIDALARM_DETECTOR": config.detector,
        "GRIDALARM_STATE_DIR": str(workdir / "state"),
        "GRIDALARM_THRESHOLD": str(run.threshold),
        "GRIDALARM_OPEN_AFTER": str(run.policy.open_after),
        "GRIDALARM_RESOLVE_AFTER": str(run.policy.resolve_after),
        "GRIDALARM_MIN_HISTORY": str(config.options.min_history),
        "GRIDALARM_HISTORY": str(config.options.history),
        "GRIDALARM_WARMUP": str(warmup),
    }
    if config.options.target is not None:
        env["GRIDALARM_TARGET"] = config.options.target
    if path is not None:
        env["GRIDALARM_MODEL"] = str(path)
    command = [sys.executable, "-m", "gridalarm"]
    subprocess.run([*command, "produce", "replay", str(data_path), "--quiet"], env=env, check=True)
    expected = sum(len(s.starts) for s in data.streams)
    log = workdir / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen([*command, "worker"], env=env, stdout=out, stderr=out)
    try:
        scores = _wait_for_scores(run_settings, expected, worker, timeout, log)
        alerts = list(read_topic(bootstrap, run_settings.topic("alerts")))
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
    runs = _runs(data, scores, alerts)
    outcomes = [scored_part(run).outcome(window_of(run.stream, data.window)) for run in runs]
    metrics = detection_metrics(outcomes, grace_windows=config.grace_windows).to_dict()
    best_f1, best_streams = point_f1_best(runs)
    metrics = {
        "dataset": data.name,
        "detector": config.detector,
        "model": local.model,
        **metrics,
        "point_f1_best_mean": best_f1,
        "point_f1_best_streams": best_streams,
    }
    gap = max(
        float(np.max(np.abs(a.scores - b.scores), initial=0.0))
        for a, b in zip(runs, local.runs, strict=True)
    )
    same_alerts = all(a.alerts == b.alerts for a, b in zip(runs, local.runs, strict=True))
    result = {
        **summary(metrics),
        "via_kafka": {
            "topic_prefix": prefix,
            "windows": expected,
            "max_score_difference_vs_in_process": round(gap, 4),
            "same_alerts_as_in_process": same_alerts,
        },
    }
    return result, Evaluation(metrics, runs, local.model)


def _wait_for_scores(
    settings: Settings, expected: int, worker: subprocess.Popen, timeout: float, log: Path
) -> list[dict[str, Any]]:
    bootstrap = KafkaAccess.from_settings(settings)
    deadline = time.monotonic() + timeout
    while True:
        if worker.poll() is not None:
            raise ViaKafkaError(f"the worker exited with {worker.returncode}{_tail(log)}")
        scores = {
            (m["stream"], m["start"]): m
            for m in read_topic(bootstrap, settings.topic("scores"), idle_ms=1000)
        }
        if len(scores) >= expected:
            return list(scores.values())
        if time.monotonic() > deadline:
            raise ViaKafkaError(
                f"{len(scores)} of {expected} scores after {timeout:.0f}s{_tail(log)}"
            )
        time.sleep(2.0)


def _runs(
    data: LabelledSet, scores: list[dict[str, Any]], alerts: list[dict[str, Any]]
) -> list[StreamRun]:
    by_key = {(m["stream"], parse_time(m["start"])): m for m in scores}
    opened: dict[str, float] = {}
    intervals: dict[str, list[tuple[float, float]]] = {}
    for alert in sorted(alerts, key=lambda a: parse_time(a["end"])):
        if alert["state"] == "open":
            opened[alert["alert_id"]] = parse_time(alert["start"])
        elif alert["state"] == "resolved" and alert["alert_id"] in opened:
            began = opened.pop(alert["alert_id"])
            intervals.setdefault(alert["stream"], []).append((began, parse_time(alert["end"])))
    runs = []
    size = data.window
    for stream in data.streams:
        rows = [by_key.get((stream.name, float(t))) for t in stream.starts]
        if any(r is None for r in rows):
            raise ViaKafkaError(f"the scores topic lacks windows of {stream.name}")
        spans = list(intervals.get(stream.name, []))
        # Alerts still open at the end, as the in-process runner closes them.
        for alert_id, began in opened.items():
            if any(a["alert_id"] == alert_id and a["stream"] == stream.name for a in alerts):
                spans.append((began, float(stream.starts[-1]) + size))
        runs.append(
            StreamRun(
                stream=stream,
                scores=np.array([r["score"] for r in rows], dtype=float),
                flagged=np.array([r["anomalous"] for r in rows], dtype=bool),
                alerts=tuple(sorted(spans)),
                models=tuple(sorted({r["model"] for r in rows})),
            )
        )
    return runs
