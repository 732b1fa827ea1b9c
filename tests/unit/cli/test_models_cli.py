"""`gridalarm train`, `models list` and `evaluate` from the command line (no Kafka needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "gridalarm", *args],
        capture_output=True, text=True, cwd=REPO, timeout=600,
        env={**os.environ, "GRIDALARM_KAFKA": "127.0.0.1:9", **env},
    )  # fmt: skip


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    done = run("simulate", "--streams", "3", "--days", "1", "--window", "1m",
               "--incidents", "hold_storm", "--seed", "4", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", "--detector", "baseline"], "give exactly one of --data FILE"),
        (["evaluate", "--detector", "nope", "--nab", "."], "--detector 'nope': use one of"),
        (["evaluate", "--detector", "baseline", "--data", "x.jsonl"], "need --labels"),
        (["train", "--out", "/tmp/never"], "give exactly one of --data FILE or --topic NAME"),
        (
            ["train", "--out", "/tmp/never", "--detector", "lstm-classifier", "--data", "x"],
            "learns from labels: give --labels",
        ),
        (["train", "--out", "/tmp/never", "--data", "/no/such/file"], "--data /no/such/file"),
        (["models", "list", "/no/such/folder"], "does not exist"),
    ],
)
def test_bad_arguments_get_one_line(args: list[str], message: str) -> None:
    done = run(*args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr


def test_models_list_shows_the_bundled_artifacts() -> None:
    done = run("models", "list")
    assert done.returncode == 0, done.stderr
    assert "lstm-forecast-60s  lstm-forecast" in done.stdout
    assert "lstm-forecast-3600s  lstm-forecast" in done.stdout


def test_evaluate_baseline_prints_metrics_and_writes_a_report(sim: Path, tmp_path: Path) -> None:
    done = run("evaluate", "--detector", "baseline", "--data", str(sim / "events.jsonl"),
               "--labels", str(sim / "labels.csv"), "--window", "1m",
               "--out", str(tmp_path / "report"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["model"] == "baseline@2"
    assert result["events"] == 1 and result["detected"] == 1
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["events"] == 1
    assert (tmp_path / "report" / "index.html").is_file()


def test_evaluate_nab_prints_nab_on_row_scores_and_on_alerts(tmp_path: Path) -> None:
    # One NAB file: 300 five-minute rows of a steady value with a spike, one window over it.
    rows = [f"2015-01-01 {h:02d}:{m:02d}:00" for h in range(24) for m in range(0, 60, 5)][:288]
    values = [40.0 if 250 <= i < 256 else 10.0 + (i % 7) * 0.3 for i in range(len(rows))]
    (tmp_path / "data" / "cat").mkdir(parents=True)
    (tmp_path / "data" / "cat" / "toy.csv").write_text(
        "timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in zip(rows, values, strict=True))
    )
    window = [f"{rows[245]}.000000", f"{rows[260]}.000000"]
    (tmp_path / "combined_windows.json").write_text(json.dumps({"cat/toy.csv": [window]}))
    done = run("evaluate", "--detector", "baseline", "--nab", str(tmp_path))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    for view in ("nab", "nab_alerts"):
        assert set(result[view]) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    assert result["point_f1_best_streams"] == 1


def test_train_then_evaluate_with_that_model(sim: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    done = run("train", "--data", str(sim / "events.jsonl"), "--window", "1m", "--out", str(model),
               "--epochs", "2", "--units", "8", "--sequence", "32", "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote {model} (lstm-forecast ")
    assert {"metadata.json", "step.npz", "model.weights.h5", "training.png"} <= {
        p.name for p in model.iterdir()
    }
    again = run("train", "--data", str(sim / "events.jsonl"), "--window", "1m",
                "--out", str(model), "--epochs", "1", "--quiet")  # fmt: skip
    assert again.returncode == 2 and "exists already" in again.stderr

    done = run("evaluate", "--detector", "lstm-forecast", "--model", str(model),
               "--data", str(sim / "events.jsonl"), "--labels", str(sim / "labels.csv"),
               "--window", "1m")  # fmt: skip
    assert done.returncode == 0, done.stderr
    version = json.loads((model / "metadata.json").read_text())["version"]
    assert json.loads(done.stdout)["model"] == f"lstm-forecast@{version}"
