"""Compositions of detectors and thresholds into scoring models (River-style wrappers).

:class:`Thresholded` pairs a detector with the threshold that turns its evidence into a score;
:class:`Ensemble` keeps the highest score of several models; :class:`ColdStart` scores a
stream with a fallback model (the baseline) until the primary one (an LSTM) is ready for it,
which also covers the windows after a model swap; :class:`HotSwap` follows the newest
artifact of a model folder, so a new version reaches a running worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gridalarm.models.artifact import Artifact, ArtifactWatcher
from gridalarm.models.detector import Detector, Scored, ScoringModel, Threshold

log = logging.getLogger(__name__)


class Thresholded:
    """A detector and its threshold. State per stream: ``[detector state, threshold state]``.

    The threshold sees only the rows whose detector is ready, so a warming stream neither
    scores nor teaches its threshold anything.
    """

    def __init__(self, detector: Detector, threshold: Threshold) -> None:
        self.detector = detector
        self.threshold = threshold
        self.name = detector.name
        self.version = detector.version

    def score(self, x: np.ndarray, states: Sequence[Any]) -> Scored:
        saved = [s if s else [None, None] for s in states]
        out = self.detector.step(x, [s[0] for s in saved])
        thr_states = [s[1] for s in saved]
        scores = np.zeros(len(saved))
        ready = np.flatnonzero(out.ready)
        if len(ready):
            raw, kept = out.raw[ready], [thr_states[i] for i in ready]
            if out.learn is None:
                got, new = self.threshold.apply(raw, kept)
            else:
                got, new = self.threshold.apply(raw, kept, np.asarray(out.learn, bool)[ready])
            scores[ready] = np.clip(got, 0.0, 100.0)
            if len(ready) == len(saved):  # the usual case: no per-stream copying
                thr_states = list(new)
            else:
                for k, i in enumerate(ready):
                    thr_states[i] = new[k]
        tag = f"{self.name}@{self.version}"
        return Scored(
            scores=scores,
            expected=out.expected,
            share=out.share,
            states=[[d, t] for d, t in zip(out.states, thr_states, strict=True)],
            ready=np.asarray(out.ready, dtype=bool),
            models=[tag] * len(saved),
        )


class ColdStart:
    """``primary`` where it is ready, ``fallback`` elsewhere. State: ``[primary, fallback]``.

    Both step on every window, so the primary warms up meanwhile and the fallback stays ready
    for whenever the primary is not (a new stream, a new model version).
    """

    def __init__(self, primary: ScoringModel, fallback: ScoringModel) -> None:
        self.primary = primary
        self.fallback = fallback

    @property
    def name(self) -> str:
        return self.primary.name

    @property
    def version(self) -> str:
        return self.primary.version

    def score(self, x: np.ndarray, states: Sequence[Any]) -> Scored:
        saved = [s if s else [None, None] for s in states]
        main = self.primary.score(x, [s[0] for s in saved])
        spare = self.fallback.score(x, [s[1] for s in saved])
        use = main.ready[:, None]
        return Scored(
            scores=np.where(main.ready, main.scores, spare.scores),
            expected=np.where(use, main.expected, spare.expected),
            share=np.where(use, main.share, spare.share),
            states=[[p, f] for p, f in zip(main.states, spare.states, strict=True)],
            ready=main.ready | spare.ready,
            models=[
                m if ok else f
                for m, f, ok in zip(main.models, spare.models, main.ready, strict=True)
            ],
        )


class Ensemble:
    """Several scoring models on the same windows; a window's score is the highest of the
    members that are ready for it (each member's score is already calibrated to 0..100 with
    50 as its alarm level, so the highest one is the member most sure of an anomaly). The
    expectation and explanation are that member's. State: one entry per member.

    Detectors that see different things (a forecaster's surprise, a pattern memory's
    novelty) miss different incidents; the maximum keeps what each one finds.
    """

    def __init__(self, members: Sequence[ScoringModel]) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = tuple(members)

    @property
    def name(self) -> str:
        return "+".join(m.name for m in self.members)

    @property
    def version(self) -> str:
        return "+".join(m.version for m in self.members)

    def score(self, x: np.ndarray, states: Sequence[Any]) -> Scored:
        k = len(self.members)
        saved = [s if s and len(s) == k else [None] * k for s in states]
        outs = [m.score(x, [s[j] for s in saved]) for j, m in enumerate(self.members)]
        ready = np.array([o.ready for o in outs])  # (k, n)
        scores = np.where(ready, np.array([o.scores for o in outs]), -1.0)
        best = np.argmax(scores, axis=0)  # the first member wins a tie
        rows = np.arange(len(best))
        return Scored(
            scores=np.maximum(scores[best, rows], 0.0),
            expected=np.array([o.expected for o in outs])[best, rows],
            share=np.array([o.share for o in outs])[best, rows],
            states=[list(member) for member in zip(*(o.states for o in outs), strict=True)],
            ready=ready.any(axis=0),
            models=[outs[j].models[i] for i, j in enumerate(best)],
        )


class HotSwap:
    """The scoring model of the newest artifact in a folder, rebuilt when a new one appears.

    Per-stream states carry the version they were made with; the detectors reset (h, c) for a
    state of another version, and :class:`ColdStart` covers the streams while they warm up.
    """

    def __init__(self, watcher: ArtifactWatcher, build: Callable[[Artifact], ScoringModel]) -> None:
        self.watcher = watcher
        self.build = build
        self.artifact = watcher.current()
        self.model = build(self.artifact)
        self._refused: tuple[str, int] | None = None  # an artifact that failed to build

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def version(self) -> str:
        return self.model.version

    def refresh(self) -> bool:
        """Switch to the newest artifact if there is a newer one; True when it switched."""
        newest = self.watcher.current()
        if newest.version == self.artifact.version or _signature(newest) == self._refused:
            return False
        try:
            model = self.build(newest)
        except Exception as exc:
            # A running worker keeps the model it has rather than stop on a bad new artifact
            # (a truncated step.npz being copied, missing keys, a newer format's fields).
            self._refused = _signature(newest)  # retried once its files change (mended)
            log.warning("not switching to model %s: %s", newest.path, exc)
            return False
        log.info("switched to model %s (%s)", newest.version, newest.path)
        self.model, self.artifact = model, newest
        return True

    def score(self, x: np.ndarray, states: Sequence[Any]) -> Scored:
        self.refresh()
        return self.model.score(x, states)


def _signature(artifact: Artifact) -> tuple[str, int]:
    """Version and newest file time: a failed artifact is tried again once it is mended."""
    times = [p.stat().st_mtime_ns for p in artifact.path.iterdir() if p.is_file()]
    return artifact.version, max(times, default=0)
