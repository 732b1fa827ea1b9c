"""The EventLog checkpoint file (gridalarm.producers.checkpoint): round trip, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gridalarm.producers import checkpoint as ckpt
from gridalarm.producers.checkpoint import (
    Checkpoint,
    CheckpointError,
    FileRef,
    PathState,
    default_checkpoint_path,
    load_checkpoint,
    save_checkpoint,
)

TOPIC = "gridalarm.events"


def sample() -> Checkpoint:
    ref = FileRef("/var/log/condor/EventLog.old", 42, 7, "ab" * 16, 166, 1234, 99)
    state = PathState(
        file=ref,
        done=((41, "cd" * 16, 200),),
        schedd="ap40.uw.osg-htc.org",
        jobs={"12.0": {"owner": "alice"}},
        events=17,
    )
    return Checkpoint(TOPIC, {"/var/log/condor/EventLog": state}, {0: 5, 1: 9}, 1.5)


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "ck.json"
    save_checkpoint(path, sample())
    assert load_checkpoint(path, TOPIC) == sample()
    assert load_checkpoint(tmp_path / "none.json", TOPIC) is None


def test_a_failed_write_leaves_the_old_checkpoint_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ck.json"
    save_checkpoint(path, sample())
    before = path.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt.os, "replace", broken_replace)
    newer = Checkpoint(TOPIC, {}, None, 2.0)
    with pytest.raises(CheckpointError, match=r"cannot write .*No space left"):
        save_checkpoint(path, newer)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ck.json"]  # no temporary file left behind


def test_damaged_or_foreign_checkpoints_are_one_line_errors(tmp_path: Path) -> None:
    path = tmp_path / "ck.json"
    for text in (b"{not json", b"[]", b'{"v": 2}', b'{"v": 1, "topic": "t", "paths": 3}'):
        path.write_bytes(text)
        with pytest.raises(CheckpointError, match="damaged") as err:
            load_checkpoint(path, TOPIC)
        assert "\n" not in str(err.value)
    save_checkpoint(path, sample())
    with pytest.raises(CheckpointError, match=r"is for topic 'gridalarm\.events', not 'x\.events'"):
        load_checkpoint(path, "x.events")


def test_default_location_depends_on_topic_and_paths(tmp_path: Path) -> None:
    a = default_checkpoint_path(tmp_path, TOPIC, [Path("/l/EventLog")])
    assert a.parent == tmp_path / "eventlog" and a.name.startswith(TOPIC)
    assert a == default_checkpoint_path(tmp_path, TOPIC, [Path("/l/EventLog")])
    assert a != default_checkpoint_path(tmp_path, "other.events", [Path("/l/EventLog")])
    assert a != default_checkpoint_path(tmp_path, TOPIC, [Path("/l/EventLog"), Path("/l/x")])
    ab = default_checkpoint_path(tmp_path, TOPIC, [Path("/a"), Path("/b")])
    assert ab == default_checkpoint_path(tmp_path, TOPIC, [Path("/b"), Path("/a")])
