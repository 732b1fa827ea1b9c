"""Model artifacts: a directory per trained model, and finding the newest one.

An artifact holds ``metadata.json`` (detector, version, features, window size, scaling,
network shape, threshold levels, training-data digest, training metrics), the Keras weights
(``model.weights.h5``, for retraining and inspection), ``step.npz`` (the same weights as the
arrays the numpy streaming step uses, so a worker never imports TensorFlow) and
``training.png``. It is written to a temporary sibling and renamed into place, so a watching
worker never sees half an artifact.

A model *folder* is either one artifact or a directory whose subdirectories are artifacts; the
newest by creation time wins. Dropping a new artifact into the folder is how a new model version
reaches running workers (:class:`ArtifactWatcher`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

METADATA = "metadata.json"
STEP_ARRAYS = "step.npz"
KERAS_WEIGHTS = "model.weights.h5"
FORMAT = 1


class ArtifactError(ValueError):
    """An artifact folder is missing, incomplete or of another format; one line for operators."""


@dataclass(frozen=True, slots=True)
class Artifact:
    """A trained model on disk."""

    path: Path
    metadata: dict[str, Any]

    @property
    def detector(self) -> str:
        return str(self.metadata["detector"])

    @property
    def version(self) -> str:
        return str(self.metadata["version"])

    @property
    def created(self) -> float:
        return float(self.metadata["created"])

    def arrays(self) -> dict[str, np.ndarray]:
        with np.load(self.path / STEP_ARRAYS) as data:
            return {key: data[key] for key in data.files}


def digest_arrays(arrays: Iterable[np.ndarray]) -> str:
    """sha256 over the arrays' bytes and shapes: the training-data and weights fingerprints."""
    h = hashlib.sha256()
    for array in arrays:
        a = np.ascontiguousarray(array)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_artifact(
    out: Path,
    metadata: dict[str, Any],
    arrays: dict[str, np.ndarray],
    extra: Callable[[Path], None] | None = None,
) -> Artifact:
    """Write an artifact to ``out`` (which must not exist yet), atomically.

    ``metadata`` gets ``format``, ``created`` and ``version`` (creation time plus the weights'
    digest) added. ``extra(tmpdir)`` may write more files (Keras weights, the training plot).
    """
    out = Path(out)
    if out.exists():
        raise ArtifactError(f"{out} exists already; give a new folder to --out or remove it")
    out.parent.mkdir(parents=True, exist_ok=True)
    created = time.time()
    weights_digest = digest_arrays(arrays[k] for k in sorted(arrays))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(created))
    meta = {
        **metadata,
        "format": FORMAT,
        "created": created,
        "version": f"{stamp}-{weights_digest[:8]}",
        "weights_digest": weights_digest,
    }
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        np.savez(tmp / STEP_ARRAYS, **arrays)
        if extra is not None:
            extra(tmp)
        (tmp / METADATA).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        tmp.chmod(0o755)  # mkdtemp makes it private; a model folder is shared with workers
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Artifact(out, meta)


def load_artifact(path: Path) -> Artifact:
    """The artifact at ``path``; ArtifactError says what is missing."""
    path = Path(path)
    meta_path = path / METADATA
    if not meta_path.is_file():
        raise ArtifactError(f"{path} is not a model artifact (no {METADATA}); make one with "
                            "`gridalarm train`")  # fmt: skip
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(
            f"{meta_path}: unreadable ({exc}); copy the artifact again or retrain it"
        ) from None
    if not isinstance(meta, dict):
        raise ArtifactError(f"{meta_path}: not a JSON object; copy the artifact again or retrain")
    missing = [key for key in ("detector", "version", "created", "features") if key not in meta]
    if missing:
        raise ArtifactError(f"{meta_path}: lacks {', '.join(missing)}; retrain the model")
    if meta.get("format") != FORMAT:
        raise ArtifactError(f"{path}: artifact format {meta.get('format')!r}, this gridalarm "
                            f"reads {FORMAT}; retrain it")  # fmt: skip
    if not (path / STEP_ARRAYS).is_file():
        raise ArtifactError(f"{path}: {STEP_ARRAYS} is missing; retrain the model")
    return Artifact(path, meta)


def find_artifacts(root: Path) -> list[Artifact]:
    """Artifacts in a model folder (the folder itself, or its subfolders), oldest first."""
    root = Path(root)
    if (root / METADATA).is_file():
        return [load_artifact(root)]
    if not root.is_dir():
        raise ArtifactError(f"model folder {root} does not exist; train one with "
                            "`gridalarm train --out DIR`")  # fmt: skip
    found = []
    for child in sorted(root.iterdir()):
        if child.is_dir() and not child.name.startswith(".") and (child / METADATA).is_file():
            try:
                found.append(load_artifact(child))
            except ArtifactError as exc:
                # One broken artifact must not hide the good ones beside it.
                log.warning("skipping %s", exc)
    return sorted(found, key=lambda a: (a.created, a.version))


def latest_artifact(root: Path, detector: str | None = None) -> Artifact:
    """The newest artifact in ``root`` (of ``detector``, if given)."""
    found = [a for a in find_artifacts(root) if detector is None or a.detector == detector]
    if not found:
        kind = f"{detector} " if detector else ""
        raise ArtifactError(f"no {kind}model artifact in {root}; train one with "
                            "`gridalarm train --out DIR`")  # fmt: skip
    return found[-1]


@dataclass(slots=True)
class ArtifactWatcher:
    """Finds the newest artifact of a folder, looking again at most every ``poll`` seconds."""

    root: Path
    detector: str
    poll: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _current: Artifact | None = field(default=None, init=False)
    _checked: float = field(default=-float("inf"), init=False)

    def current(self) -> Artifact:
        """The newest artifact; a broken new one is ignored until it is mended."""
        now = self.clock()
        if self._current is None or now - self._checked >= self.poll:
            self._checked = now
            try:
                self._current = latest_artifact(self.root, self.detector)
            except ArtifactError:
                if self._current is None:
                    raise
        return self._current
