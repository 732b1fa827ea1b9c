"""The evaluations behind ``gridalarm evaluate`` and the standard suite of ``make evaluate``.

Suite (each detector beside the baseline, figures written into README between markers):
- simulator, 50 streams x 4 weeks, all six incident kinds four times each, hourly and 5-minute
  windows; the LSTMs train on other simulated pools (lstm-forecast: a normal month of 20
  streams; lstm-classifier: a labelled month of 20 streams with each kind six times, 36
  incidents: with 12 it learned too few examples, recall 0.79 against 1.0), never on the
  evaluated one;
- NAB (the nab-dev part), the gauge detectors (:data:`GAUGE_DETECTORS`): the LSTM learned per
  corpus from each file's probationary 15% only; scored as NAB means it (every row's score,
  NAB's optimiser picks the threshold) and, beside it, on the worker's alert openings;
- NASA MSL, the gauge detectors: the LSTM learned from the channels' train split, all scored on
  the test split; point-wise F1 without point adjustment at the worker's threshold, and the
  best point F1 per channel over all thresholds, averaged over the labelled channels.

Run: ``make evaluate`` or ``python -m gridalarm.evaluation.standard [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from gridalarm.config import DEFAULT_FEATURES
from gridalarm.evaluation.datasets import LabelledSet, load_msl, load_nab
from gridalarm.evaluation.evaluate import (
    Evaluation,
    EvaluationConfig,
    evaluate,
    nab_files,
    training_data,
    write_results,
)
from gridalarm.evaluation.sources import SimulatedPool, simulated
from gridalarm.models.registry import detector_names
from gridalarm.models.scaling import ScalingConfig
from gridalarm.models.training import train

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
INCIDENTS = (
    "outage", "hold_storm", "eviction_wave", "disconnect_storm", "black_hole", "submit_flood"
)  # fmt: skip
# Gauges and telemetry are not counts: no log1p, and a spread floor in their own units.
GAUGE_SCALING = ScalingConfig(transform="none", floor=1e-6)
# The detectors of the NAB and MSL suites (gauges); baseline and novelty fit while streaming.
GAUGE_DETECTORS = ("baseline", "lstm-forecast", "novelty")
# NAB's profiles in the order of the table's "standard / low FP / low FN".
NAB_PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")

SUMMARY_KEYS = (
    "point_precision", "point_recall", "point_f1", "event_precision", "event_recall",
    "event_f1", "events", "detected", "mean_time_to_detect_windows", "alerts", "false_alarms",
    "false_alarms_per_stream_day", "false_alarms_per_stream_week", "point_f1_best_mean",
    "point_f1_best_streams",
)  # fmt: skip


def summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of a metrics dict, rounded for people."""
    out: dict[str, Any] = {"dataset": metrics["dataset"], "model": metrics["model"]}
    for key in SUMMARY_KEYS:
        value = metrics.get(key)
        out[key] = round(value, 4) if isinstance(value, float) else value
    return out


def gauges(config: EvaluationConfig) -> EvaluationConfig:
    """``config`` training on gauge scaling (NAB values, MSL telemetry are not counts)."""
    return replace(config, train=replace(config.train, scaling=GAUGE_SCALING))


TELEMETRY_TARGET = "d0"  # MSL's telemetry value; d1..d54 are command flags


def telemetry(config: EvaluationConfig) -> EvaluationConfig:
    """NASA MSL: gauges, and only channel 0 (the telemetry value) is judged; the 54 command
    flags help predict it, as in Telemanom (measured on MSL: event precision 0.11 -> 0.31 and
    recall 0.69 -> 0.78 against judging every dimension); ``novelty`` judges d0 alone."""
    streaming = replace(config.train.streaming, targets=(0,))
    return replace(
        gauges(config),
        train=replace(config.train, scaling=GAUGE_SCALING, streaming=streaming),
        options=replace(config.options, target=TELEMETRY_TARGET),
    )


def evaluate_labelled(
    data: LabelledSet, config: EvaluationConfig, workdir: Path
) -> tuple[dict[str, Any], Evaluation]:
    """Metrics of ``config.detector`` on ``data`` (a labelled file, topic or MSL)."""
    evaluation = evaluate(data, config, workdir)
    return summary(evaluation.metrics), evaluation


def evaluate_nab(
    root: Path, config: EvaluationConfig, workdir: Path, out: Path | None
) -> tuple[dict[str, Any], Evaluation]:
    """NAB scores (three profiles) plus the detection metrics of the NAB folder ``root``;
    NAB's results layout in ``out``.

    ``nab`` is NAB's own protocol, every row's score (the headline, comparable with NAB's
    scoreboard); ``nab_alerts`` hands NAB only the rows where the worker opened an alert, so it
    also judges the threshold and alert rule. The results layout holds the row scores, which
    NAB's own scorer can check against ``nab``.
    """
    from gridalarm.evaluation.nab import nab_scores, read_windows
    from gridalarm.evaluation.nab_results import write_nab_results

    data = load_nab(root)
    config = gauges(config)
    evaluation = evaluate(data, config, workdir)
    windows = read_windows(nab_windows_file(Path(root)))
    files = nab_files(evaluation.runs, windows, source="scores")
    alerts = nab_files(evaluation.runs, windows, source="alerts")
    result = {
        **summary(evaluation.metrics),
        "nab": nab_scores(files),
        "nab_alerts": nab_scores(alerts),
    }
    if out is not None:
        for run, file in zip(evaluation.runs, files, strict=True):
            write_nab_results(out / "nab-results", config.detector, run.stream, file.scores)
    return result, evaluation


def nab_windows_file(root: Path) -> Path:
    """NAB's label windows: ``labels/combined_windows.json`` or ``combined_windows.json``."""
    for candidate in (root / "labels" / "combined_windows.json", root / "combined_windows.json"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{root}: no labels/combined_windows.json or combined_windows.json")


def _simulator_suite(window: float, quick: bool, out: Path) -> list[dict[str, Any]]:
    days = 7.0 if quick else 28.0
    streams = 10 if quick else 50
    repeat = 1 if quick else 4
    evaluated = simulated(
        SimulatedPool(streams, days, window, INCIDENTS * repeat, seed=1), DEFAULT_FEATURES
    )
    normal = simulated(SimulatedPool(20, days, window, (), seed=101), DEFAULT_FEATURES)
    labelled = simulated(SimulatedPool(20, days, window, INCIDENTS * 6, seed=102), DEFAULT_FEATURES)
    rows = []
    workdir = out / f"models-{window:g}s"
    shutil.rmtree(workdir, ignore_errors=True)  # never score with a model of an earlier run
    workdir.mkdir(parents=True)
    for detector, source in (
        ("baseline", None), ("lstm-forecast", normal), ("lstm-classifier", labelled)
    ):  # fmt: skip
        config = EvaluationConfig(detector=detector)
        model = None
        if source is not None:
            model = workdir / detector
            started = time.perf_counter()
            train(
                training_data(source, detector == "lstm-classifier"),
                replace(config.train, detector=detector),
                model,
                progress=False,
            )
            print(f"  trained {detector} on {source.name} in "
                  f"{time.perf_counter() - started:.1f}s")  # fmt: skip
        evaluation = evaluate(data=evaluated, config=replace(config, model=model),
                              workdir=workdir)  # fmt: skip
        write_results(out / f"sim-{window:g}s-{detector}", evaluation, evaluated.name)
        rows.append(summary(evaluation.metrics) | {"detector": detector})
        print("  " + json.dumps(rows[-1]))
    return rows


def check_detectors(names: tuple[str, ...] = GAUGE_DETECTORS) -> None:
    """Fail before the suite's hours of work, not at its NAB step, if a detector is unknown."""
    missing = [name for name in names if name not in detector_names()]
    if missing:
        raise ValueError(
            f"detectors not registered in gridalarm.models.registry: {', '.join(missing)}"
        )


def run_suite(quick: bool, out: Path) -> dict[str, Any]:
    """All standard evaluations; returns {suite name: [rows]}."""
    check_detectors()
    for stale in ("nab-models", "msl-models"):  # models trained by an earlier run
        shutil.rmtree(out / stale, ignore_errors=True)
    results: dict[str, Any] = {}
    for window, name in ((3600.0, "simulator, hourly windows"), (300.0, "simulator, 5-minute")):
        print(name)
        results[name] = _simulator_suite(window, quick, out)
    nab_root = SHARED_DATA / "nab-dev"
    if nab_root.is_dir():
        print("NAB (nab-dev)")
        rows = []
        for detector in GAUGE_DETECTORS:
            config = EvaluationConfig(detector=detector)
            result, evaluation = evaluate_nab(nab_root, config, out / "nab-models", out / "nab")
            write_results(out / f"nab-{detector}", evaluation, evaluation.metrics["dataset"])
            rows.append(result | {"detector": detector})
            print("  " + json.dumps(rows[-1]))
        results["NAB"] = rows
    msl_root = SHARED_DATA / "msl"
    if msl_root.is_dir():
        print("NASA MSL")
        data = load_msl(msl_root)
        rows = []
        for detector in GAUGE_DETECTORS:
            config = telemetry(EvaluationConfig(detector=detector))
            result, evaluation = evaluate_labelled(data, config, out / "msl-models")
            write_results(out / f"msl-{detector}", evaluation, data.name)
            rows.append(result | {"detector": detector})
            print("  " + json.dumps(rows[-1]))
        results["MSL"] = rows
    return results


def markdown(results: dict[str, Any]) -> str:
    """The README table of a suite run.

    Blank cells are figures a suite does not have (NAB scores off NAB; a best point F1 without
    labelled streams, or in a results.json written before it was measured).
    """
    lines = [
        "| data | detector | event recall | event precision | mean time to detect (windows) "
        "| false alarms / stream-week | point F1 | best point F1 (mean per stream) "
        "| NAB standard / low FP / low FN | NAB with alert rule (standard) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for suite, rows in results.items():
        for row in rows:
            nab = row.get("nab")
            nab_text = " / ".join(f"{nab[k]:.1f}" for k in NAB_PROFILES) if nab else ""
            nab_alerts = row.get("nab_alerts")
            alerts_text = f"{nab_alerts['standard']:.1f}" if nab_alerts else ""
            best = row.get("point_f1_best_mean")
            mttd = row["mean_time_to_detect_windows"]
            lines.append(
                f"| {suite} | {row['detector']} | {row['event_recall']:.3f} "
                f"| {row['event_precision']:.3f} "
                f"| {'' if mttd is None else f'{mttd:.2f}'} "
                f"| {row['false_alarms_per_stream_week']:.2f} | {row['point_f1']:.3f} "
                f"| {'' if best is None else f'{best:.3f}'} "
                f"| {nab_text} | {alerts_text} |"
            )
    return "\n".join(lines)


def write_readme(results: dict[str, Any], readme: Path) -> None:
    """Replace the table between the evaluate markers of README."""
    text = readme.read_text()
    begin, end = "<!-- evaluate:begin -->", "<!-- evaluate:end -->"
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    block = f"{begin}\n_Measured by `make evaluate` on {stamp}._\n\n{markdown(results)}\n{end}"
    if begin in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text,
                      flags=re.S)  # fmt: skip
    else:
        text += f"\n{block}\n"
    readme.write_text(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the standard evaluations.")
    parser.add_argument("--quick", action="store_true", help="small pools (a smoke run)")
    parser.add_argument("--out", type=Path, default=REPO / ".state" / "evaluate")
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results = run_suite(args.quick, args.out)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))
    print(f"took {time.perf_counter() - started:.0f}s; reports in {args.out}")
    if args.readme:
        write_readme(results, REPO / "README.md")


if __name__ == "__main__":
    main()
