"""The EventLog producer's checkpoint: how far each log has been delivered, written atomically.

A checkpoint names, per followed path, the *file generation* being read and the byte offset of
the next event in it. A generation is an inode plus a fingerprint of the file's first event, so
that neither a rotation (a new inode at the same path) nor a truncation or an inode the file
system reused (the same inode with different first bytes) is mistaken for the file read before.
It also keeps what the producer learned that shapes its output (the schedd name, per-job
attributes for ``--stream-by``), so that a restarted producer sends the same stream ids.

``kafka_ends`` are the end offsets of the events topic right after the flush that made this
checkpoint: everything the producer sent after the checkpoint lies beyond them, which is where
a restarted producer looks for events a crash left delivered but not checkpointed.

The file is JSON (one object, ``"v": 1``), written to a temporary file in the same folder,
fsynced, renamed over the old one and the folder fsynced: a crash at any moment leaves the old
checkpoint or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

CHECKPOINT_VERSION = 1
# Bytes of a file's first event that identify the file (the whole event when shorter).
FINGERPRINT_BYTES = 1024


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or written; the message is one line."""


def fingerprint(data: bytes) -> str:
    """The fingerprint of a file's first bytes (hex, 32 characters)."""
    return hashlib.sha256(data).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class FileRef:
    """A file generation and the offset in it where the next unsent event starts.

    ``name`` is where the file was last seen (a rotated file is found again by inode and
    fingerprint under its new name); ``fingerprint`` is None until the first event is read;
    ``mtime_ns`` (its last write as seen) orders it against rotated siblings if it is gone.
    """

    name: str
    ino: int
    dev: int
    fingerprint: str | None
    fp_len: int
    offset: int
    mtime_ns: int = 0

    @property
    def identity(self) -> tuple[int, str | None]:
        """Inode and fingerprint: the same file content, wherever it is now."""
        return (self.ino, self.fingerprint)


@dataclass(frozen=True, slots=True)
class PathState:
    """What the producer knows about one followed path."""

    file: FileRef | None = None
    # Files finished under this path (rotated away and read to the end): inode, fingerprint
    # and its length, so that a rotated sibling already read is not read again.
    done: tuple[tuple[int, str | None, int], ...] = ()
    schedd: str | None = None
    # Per-job attributes remembered for --stream-by ("cluster.proc" → {name: value}).
    jobs: dict[str, dict[str, str]] = field(default_factory=dict)
    events: int = 0


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Every followed path's state, for one events topic."""

    topic: str
    paths: dict[str, PathState] = field(default_factory=dict)
    kafka_ends: dict[int, int] | None = None
    saved_at: float = 0.0


def default_checkpoint_path(state_dir: Path, topic: str, paths: list[Path]) -> Path:
    """``<state_dir>/eventlog/<topic>-<digest>.json``: one checkpoint per topic and path set."""
    names = "\n".join(sorted(str(p.resolve()) for p in paths))
    digest = hashlib.sha256(f"{topic}\n{names}".encode()).hexdigest()[:12]
    return state_dir / "eventlog" / f"{topic}-{digest}.json"


def load_checkpoint(path: Path, topic: str) -> Checkpoint | None:
    """The checkpoint at ``path`` (None if there is none yet). Raises :class:`CheckpointError`
    for a file that is not a checkpoint, or one written for another events topic."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise CheckpointError(f"checkpoint {path}: cannot read ({err.strerror or err})") from None
    try:
        data = orjson.loads(raw)
        if not isinstance(data, dict) or data.get("v") != CHECKPOINT_VERSION:
            raise ValueError(f"not a version {CHECKPOINT_VERSION} checkpoint")
        checkpoint = _from_json(data)
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise CheckpointError(
            f"checkpoint {path} is damaged ({err}); move it away to start the logs afresh"
        ) from None
    if checkpoint.topic != topic:
        raise CheckpointError(
            f"checkpoint {path} is for topic {checkpoint.topic!r}, not {topic!r}; "
            "use another --checkpoint"
        )
    return checkpoint


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Replace the checkpoint at ``path`` atomically (see the module docstring)."""
    try:
        write_atomically(path, orjson.dumps(_to_json(checkpoint), option=orjson.OPT_INDENT_2))
    except OSError as err:
        raise CheckpointError(f"checkpoint {path}: cannot write ({err.strerror or err})") from None


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash at any moment leaves the old file or the
    new one, never a mix: a temporary file in the same folder, fsynced, renamed over the old
    one, the folder fsynced. Every producer's checkpoint is written this way."""
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _to_json(checkpoint: Checkpoint) -> dict[str, Any]:
    return {
        "v": CHECKPOINT_VERSION,
        "topic": checkpoint.topic,
        "saved_at": checkpoint.saved_at or time.time(),
        "kafka_ends": (
            None
            if checkpoint.kafka_ends is None
            else {str(p): o for p, o in sorted(checkpoint.kafka_ends.items())}
        ),
        "paths": {
            name: {
                "file": None if state.file is None else _file_json(state.file),
                "done": [list(identity) for identity in state.done],
                "schedd": state.schedd,
                "jobs": state.jobs,
                "events": state.events,
            }
            for name, state in checkpoint.paths.items()
        },
    }


def _file_json(ref: FileRef) -> dict[str, Any]:
    return {
        "name": ref.name,
        "ino": ref.ino,
        "dev": ref.dev,
        "fingerprint": ref.fingerprint,
        "fp_len": ref.fp_len,
        "offset": ref.offset,
        "mtime_ns": ref.mtime_ns,
    }


def _from_json(data: dict[str, Any]) -> Checkpoint:
    paths: dict[str, PathState] = {}
    for name, entry in data["paths"].items():
        file = entry.get("file")
        ref = None
        if file is not None:
            ref = FileRef(
                name=str(file["name"]),
                ino=int(file["ino"]),
                dev=int(file["dev"]),
                fingerprint=file["fingerprint"],
                fp_len=int(file["fp_len"]),
                offset=int(file["offset"]),
                mtime_ns=int(file.get("mtime_ns", 0)),
            )
            if ref.offset < 0 or ref.fp_len < 0:
                raise ValueError(f"negative offset for {name}")
        jobs = entry.get("jobs") or {}
        if not isinstance(jobs, dict):
            raise ValueError(f"jobs of {name} is not an object")
        paths[str(name)] = PathState(
            file=ref,
            done=tuple((int(ino), fp, int(n)) for ino, fp, n in entry.get("done", [])),
            schedd=entry.get("schedd"),
            jobs={str(k): {str(a): str(v) for a, v in attrs.items()} for k, attrs in jobs.items()},
            events=int(entry.get("events", 0)),
        )
    ends = data.get("kafka_ends")
    return Checkpoint(
        topic=str(data["topic"]),
        paths=paths,
        kafka_ends=None if ends is None else {int(p): int(o) for p, o in ends.items()},
        saved_at=float(data.get("saved_at", 0.0)),
    )


__all__ = [
    "CHECKPOINT_VERSION",
    "FINGERPRINT_BYTES",
    "Checkpoint",
    "CheckpointError",
    "FileRef",
    "PathState",
    "default_checkpoint_path",
    "fingerprint",
    "load_checkpoint",
    "save_checkpoint",
    "write_atomically",
]
