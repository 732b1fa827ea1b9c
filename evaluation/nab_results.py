"""Detector output in NAB's results layout, so that NAB's own scorer can check our NAB scores.

NAB reads ``results/<detector>/<category>/<detector>_<file>.csv`` with the columns
``timestamp,value,anomaly_score,label``; it ignores ``value`` and ``label`` for scoring (it
takes labels from its own windows) but its tools and plots expect them. Timestamps are written
as in NAB's data files (``YYYY-MM-DD HH:MM:SS``, UTC), so a results row matches its data row.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from gridalarm.evaluation.datasets import LabelledStream, safe_stem

__all__ = ["nab_result_path", "nab_timestamps", "write_nab_results"]

_SAFE_PART = re.compile(r"^[A-Za-z0-9._-]+$")
DEFAULT_CATEGORY = "streams"


def nab_result_path(out_dir: Path | str, detector: str, stream: LabelledStream) -> Path:
    """Where :func:`write_nab_results` writes ``stream``'s results.

    A NAB stream (``<category>/<file>.csv``) keeps NAB's names, which NAB needs to match the
    results to its data. Any other stream goes to category ``group`` (``streams`` without one)
    under a file-safe name, e.g. ``schedd:fifebatch1`` → ``schedd_fifebatch1-<hash>.csv``.
    """
    if not _SAFE_PART.match(detector) or detector in (".", ".."):
        raise ValueError(f"detector name {detector!r}: use letters, digits, '.', '_' or '-'")
    category, _, file = stream.name.rpartition("/")
    if not (_is_safe(category) and _is_safe(file) and file.endswith(".csv")):
        category = stream.group if _is_safe(stream.group) else DEFAULT_CATEGORY
        file = f"{safe_stem(stream.name)}.csv"
    return Path(out_dir) / detector / category / f"{detector}_{file}"


def _is_safe(part: str) -> bool:
    return bool(_SAFE_PART.match(part)) and part not in (".", "..")


def write_nab_results(
    out_dir: Path | str, detector: str, stream: LabelledStream, scores01: np.ndarray
) -> Path:
    """Write one stream's anomaly scores (0..1, one per row) as a NAB results file; its path.

    ``value`` is the stream's value as loaded (a multi-feature stream has no single value: the
    sum over its features is written). ``label`` is 1 for rows inside a label interval. The
    file appears whole or not at all (written beside, then renamed).
    """
    scores = np.asarray(scores01, dtype=np.float64)
    if scores.shape != (len(stream),):
        raise ValueError(
            f"stream {stream.name!r}: {scores.shape} scores for {len(stream)} rows; "
            "expected one per row"
        )
    if not np.isfinite(scores).all() or ((scores < 0) | (scores > 1)).any():
        raise ValueError(f"stream {stream.name!r}: anomaly scores must be finite and in [0, 1]")
    path = nab_result_path(out_dir, detector, stream)
    values = stream.values[:, 0] if stream.values.shape[1] == 1 else stream.values.sum(axis=1)
    labels = stream.label_mask().astype(np.int8)
    lines = ["timestamp,value,anomaly_score,label\n"]
    lines.extend(
        f"{stamp},{value!r},{score!r},{label}\n"
        for stamp, value, score, label in zip(
            nab_timestamps(stream.starts),
            values.tolist(),
            scores.tolist(),
            labels.tolist(),
            strict=True,
        )
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text("".join(lines), encoding="utf-8")
    os.replace(partial, path)
    return path


def nab_timestamps(starts: np.ndarray) -> list[str]:
    """``YYYY-MM-DD HH:MM:SS`` (UTC) of epoch seconds, as NAB's data files write them;
    fractions of a second are dropped (NAB's data has none)."""
    seconds = np.floor(np.asarray(starts, dtype=np.float64)).astype(np.int64)
    text = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s")
    return [stamp.replace("T", " ") for stamp in text.tolist()]
