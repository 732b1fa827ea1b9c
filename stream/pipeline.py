"""The pure pipeline built from settings: windower, scorer (detector + threshold + alert policy).

The Faust worker builds one per process; the detection check and (issue 3) the evaluator build
the same object, so a window is scored by one code path, live or replayed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gridalarm.config import Settings
from gridalarm.messages import TimeBounds
from gridalarm.models.registry import ModelOptions, build_model, open_after
from gridalarm.stream.alerting import AlertPolicy
from gridalarm.stream.processor import PartitionProcessor
from gridalarm.stream.scoring import Scorer, ScoringConfig
from gridalarm.stream.windows import WindowConfig, Windower


@dataclass(frozen=True, slots=True)
class Pipeline:
    """Everything that turns a partition's messages into outputs, minus Kafka."""

    windower: Windower
    scorer: Scorer
    bounds: TimeBounds
    max_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Pipeline:
        model = build_model(
            settings.detector,
            ModelOptions(
                min_history=settings.min_history,
                history=settings.history,
                model_path=settings.model,
                poll=settings.model_poll,
                features=settings.features,
                window=settings.window,
                warmup=settings.warmup,
                target=settings.target,
            ),
        )
        policy = AlertPolicy(
            open_after=open_after(settings.detector, settings.open_after),
            resolve_after=settings.resolve_after,
        )
        return cls(
            windower=Windower(WindowConfig(settings.window, settings.lateness, settings.features)),
            scorer=Scorer(
                model,
                ScoringConfig(
                    features=settings.features, threshold=settings.threshold, policy=policy
                ),
            ),
            bounds=TimeBounds(max_future=settings.max_future),
            max_bytes=settings.max_message_bytes,
        )

    def restore(
        self, partition: int, record: bytes | None, load_stream: Callable[[str], bytes | None]
    ) -> PartitionProcessor:
        """A partition's processor, rebuilt from its stored records (None: a fresh one)."""
        return PartitionProcessor.restore(
            partition,
            record,
            load_stream,
            windower=self.windower,
            scorer=self.scorer,
            bounds=self.bounds,
            max_bytes=self.max_bytes,
        )
