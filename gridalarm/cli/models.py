"""`gridalarm train`, `gridalarm models list` and `gridalarm evaluate`: the model life cycle.

Train an artifact from a file or the windows history topic, list the artifacts a worker could
use, and judge a detector on labelled data (a file, a history topic, NAB or NASA MSL) before
trusting it, in process or through a real Kafka round trip.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gridalarm.cli import CliError
from gridalarm.config import Settings, load_settings
from gridalarm.timeutil import parse_time

if TYPE_CHECKING:
    from gridalarm.evaluation.feedback import Feedback

models_app = typer.Typer(help="Model artifacts.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``train``, ``models`` and ``evaluate`` to the CLI."""
    app.command("train")(train)
    app.command("evaluate")(evaluate)
    app.add_typer(models_app, name="models")


DataOpt = Annotated[
    Path | None,
    typer.Option(help="events JSONL, CSV of window counts, or the study's '<hour> |' lines"),
]
TopicOpt = Annotated[str | None, typer.Option(help="a windows history topic to read instead")]
LabelsOpt = Annotated[Path | None, typer.Option(help="labels CSV: stream,start,end[,kind]")]
LabelsTopicOpt = Annotated[
    str | None,
    typer.Option(help="operators' feedback labels topic (gridalarm label), e.g. gridalarm.labels"),
]


def _load(settings: Settings, data: Path | None, topic: str | None, labels: Path | None,
          since: str | None, until: str | None, labels_topic: str | None = None):  # fmt: skip
    """The labelled set named by --data or --topic, with the feedback of --labels-topic."""
    from gridalarm.evaluation.sources import from_history, load_file

    if (data is None) == (topic is None):
        raise CliError("give exactly one of --data FILE or --topic NAME")
    if labels is not None and not labels.is_file():
        raise CliError(f"--labels {labels}: no such file")
    if data is not None:
        if not data.is_file():
            raise CliError(f"--data {data}: no such file")
        loaded = load_file(data, labels, settings.window, settings.features, settings.lateness)
    else:
        from gridalarm.history import HistoryRange, read_windows
        from gridalarm.topics import resolve_kafka

        span = HistoryRange(
            parse_time(since) if since else None, parse_time(until) if until else None
        )
        windows = read_windows(resolve_kafka(settings), str(topic), span)
        loaded = from_history(windows, settings.features, str(topic), labels)
    if labels_topic is None:
        return loaded
    from gridalarm.evaluation.feedback import with_feedback

    return with_feedback(loaded, _feedback(settings, labels_topic))


def _feedback(settings: Settings, labels_topic: str) -> Feedback:
    """The feedback labels on ``labels_topic``, placed by the alerts topic beside it."""
    from gridalarm.evaluation.feedback import feedback
    from gridalarm.history import HistoryError, read_topic
    from gridalarm.labels import incidents, read_labels
    from gridalarm.topics import resolve_kafka, wait_for_broker

    bootstrap = resolve_kafka(settings)
    wait_for_broker(bootstrap, timeout=10.0)
    labels = read_labels(bootstrap, labels_topic)
    # `<prefix>.labels` → `<prefix>.alerts`: the alerts the labels name, with their full spans.
    prefix, dot, kind = labels_topic.rpartition(".")
    alerts_topic = f"{prefix}.alerts" if dot and kind == "labels" else settings.topic("alerts")
    try:
        known = incidents(read_topic(bootstrap, alerts_topic)) if labels else {}
    except HistoryError:
        known = {}  # the labels' own spans stand in
    result = feedback(labels, known)
    typer.echo(f"labels from {labels_topic}: {result.summary()}", err=True)
    return result


def train(
    out: Annotated[Path, typer.Option(help="new artifact folder to write")],
    detector: Annotated[
        str, typer.Option(help="lstm-forecast (unsupervised) or lstm-classifier (labels)")
    ] = "lstm-forecast",
    data: DataOpt = None,
    topic: TopicOpt = None,
    since: Annotated[str | None, typer.Option(help="with --topic: first window start")] = None,
    until: Annotated[str | None, typer.Option(help="with --topic: windows before this")] = None,
    labels: LabelsOpt = None,
    labels_topic: LabelsTopicOpt = None,
    window: Annotated[str | None, typer.Option(help="window size for event files")] = None,
    units: Annotated[int | None, typer.Option(help="LSTM units per layer")] = None,
    layers: Annotated[int | None, typer.Option(help="stacked LSTM layers")] = None,
    dropout: Annotated[float | None, typer.Option(help="input dropout per layer")] = None,
    sequence: Annotated[int | None, typer.Option(help="windows per training sequence")] = None,
    epochs: Annotated[int | None, typer.Option(help="at most this many epochs")] = None,
    batch: Annotated[int | None, typer.Option(help="sequences per batch")] = None,
    seed: Annotated[int | None, typer.Option(help="seed: same data and seed, same model")] = None,
    transform: Annotated[
        str | None, typer.Option(help="log1p for counts (default), none for gauges")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bar")] = False,
) -> None:
    """Train an LSTM detector and write its artifact (weights, metadata, training curve).

    lstm-classifier learns the labelled windows (--labels FILE, confirmed feedback of
    --labels-topic) as anomalies; lstm-forecast leaves them out of its training data.
    """
    from dataclasses import replace

    from gridalarm.evaluation.evaluate import training_data
    from gridalarm.evaluation.feedback import without_labelled
    from gridalarm.models.networks import NetworkConfig
    from gridalarm.models.training import TrainConfig, with_overrides
    from gridalarm.models.training import train as run_training

    if detector not in ("lstm-forecast", "lstm-classifier"):
        raise CliError(f"--detector {detector!r}: use lstm-forecast or lstm-classifier")
    if detector == "lstm-classifier" and labels is None and labels_topic is None:
        raise CliError(
            "--detector lstm-classifier learns from labels: give --labels FILE or "
            "--labels-topic TOPIC"
        )
    if transform not in (None, "log1p", "none"):
        raise CliError(f"--transform {transform!r}: use log1p or none")
    settings = load_settings(window=window)
    loaded = _load(settings, data, topic, labels, since, until, labels_topic)
    if detector == "lstm-forecast":
        # It learns what normal looks like: known anomalies would teach it to expect them.
        loaded = without_labelled(loaded)
    try:
        network = with_overrides(NetworkConfig(), units=units, layers=layers, dropout=dropout)
        config = with_overrides(
            TrainConfig(detector=detector),  # type: ignore[arg-type]
            network=network, sequence=sequence, epochs=epochs, batch=batch, seed=seed,
        )  # fmt: skip
        if transform:
            config = replace(config, scaling=replace(config.scaling, transform=transform))
        result = run_training(
            training_data(loaded, detector == "lstm-classifier"), config, out, not quiet
        )
    except ValueError as err:
        raise CliError(str(err)) from None
    meta = result.artifact.metadata
    t = meta["training"]
    typer.echo(
        f"wrote {out} ({meta['detector']} {meta['version']}): {t['streams']} streams, "
        f"{t['windows']} windows, {t['epochs_run']} epochs (best {t['best_epoch']}), "
        f"val loss {t['val_loss']:.4f}, {result.seconds:.1f}s"
    )


@models_app.command("list")
def list_models(
    folder: Annotated[Path | None, typer.Argument(help="model folder (default: setting)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per artifact")] = False,
) -> None:
    """Show the model artifacts in a folder, oldest first (the worker uses the newest)."""
    from gridalarm.models.artifact import find_artifacts
    from gridalarm.models.registry import BUNDLED_MODELS

    settings = load_settings()
    root = folder or settings.model or BUNDLED_MODELS
    found = find_artifacts(root)
    if not found:
        typer.echo(f"no model artifacts in {root}")
        return
    for artifact in found:
        meta = artifact.metadata
        t = meta.get("training", {})
        if as_json:
            typer.echo(json.dumps({"path": str(artifact.path), **meta}, sort_keys=True))
            continue
        typer.echo(
            f"{artifact.path}  {meta['detector']}  {meta['version']}  window "
            f"{meta['window']:g}s  {len(meta['features'])} features  trained on "
            f"{t.get('streams', '?')} streams, {t.get('windows', '?')} windows  "
            f"val loss {t.get('val_loss', float('nan')):.4f}"
        )


def evaluate(
    detector: Annotated[str, typer.Option(help="baseline, lstm-forecast or lstm-classifier")],
    model: Annotated[
        Path | None, typer.Option(help="artifact (folder); default: train on the training part")
    ] = None,
    data: DataOpt = None,
    topic: TopicOpt = None,
    labels: LabelsOpt = None,
    labels_topic: LabelsTopicOpt = None,
    nab: Annotated[Path | None, typer.Option(help="NAB folder: data/, combined_windows")] = None,
    msl: Annotated[Path | None, typer.Option(help="NASA MSL folder: MSL_npy.zip, labels")] = None,
    out: Annotated[Path | None, typer.Option(help="report folder (PNGs, index.html)")] = None,
    via_kafka: Annotated[
        bool, typer.Option("--via-kafka", help="replay through Kafka and the worker")
    ] = False,
    window: Annotated[str | None, typer.Option(help="window size for event files")] = None,
) -> None:
    """Score labelled data with a detector, in event-time order, and print the metrics (JSON).

    With --labels-topic, alerts that operators confirmed are true incidents and every other
    alert of the detector is a false alarm (see gridalarm.evaluation.feedback). With --nab,
    "nab" is NAB's score of every row's score (NAB picks the threshold) and "nab_alerts" its
    score of the alert openings alone (the worker's threshold and alert rule).
    """
    from gridalarm.evaluation.datasets import load_msl
    from gridalarm.evaluation.evaluate import EvaluationConfig, write_results
    from gridalarm.evaluation.standard import (
        evaluate_labelled,
        evaluate_nab,
        telemetry,
    )
    from gridalarm.models.registry import ModelOptions, detector_names

    if detector not in detector_names():
        raise CliError(f"--detector {detector!r}: use one of {', '.join(detector_names())}")
    sources = [x for x in (data, topic, nab, msl) if x is not None]
    if len(sources) != 1:
        raise CliError("give exactly one of --data FILE, --topic NAME, --nab DIR or --msl DIR")
    if (data is not None or topic is not None) and labels is None and labels_topic is None:
        raise CliError(
            "--data and --topic need --labels FILE (stream,start,end) or --labels-topic TOPIC "
            "to evaluate"
        )
    if labels_topic is not None and (nab is not None or msl is not None):
        raise CliError("--labels-topic labels the pool's streams: use it with --data or --topic")
    if model is not None and not model.exists():
        raise CliError(f"--model {model}: no such artifact or folder")
    settings = load_settings(window=window)
    options = ModelOptions(
        min_history=settings.min_history,
        history=settings.history,
        warmup=settings.warmup,
        target=settings.target,
    )
    config = EvaluationConfig(
        detector=detector, model=model, run=_run_config(settings, detector), options=options
    )
    with tempfile.TemporaryDirectory(prefix="gridalarm-eval-") as tmp:
        workdir = Path(tmp)
        if nab is not None:
            if not nab.is_dir():
                raise CliError(f"--nab {nab}: no such folder")
            result, evaluation = evaluate_nab(nab, config, workdir, out)
        else:
            if msl is not None:
                loaded = load_msl(msl)
                config = telemetry(config)
            else:
                loaded = _load(settings, data, topic, labels, None, None, labels_topic)
            if via_kafka:
                from gridalarm.evaluation.via_kafka import evaluate_via_kafka

                if data is None:
                    raise CliError("--via-kafka replays a file: use it with --data FILE")
                result, evaluation = evaluate_via_kafka(loaded, data, config, workdir, settings)
            else:
                result, evaluation = evaluate_labelled(loaded, config, workdir)
        if out is not None:
            title = f"{detector} on {evaluation.metrics['dataset']}"
            write_results(out, evaluation, title, config.run.threshold)
    typer.echo(json.dumps(result, sort_keys=False))


def _run_config(settings: Settings, detector: str):
    from gridalarm.evaluation.runner import RunConfig
    from gridalarm.models.registry import open_after
    from gridalarm.stream.alerting import AlertPolicy

    return RunConfig(
        threshold=settings.threshold,
        policy=AlertPolicy(
            open_after=open_after(detector, settings.open_after),
            resolve_after=settings.resolve_after,
        ),
    )
