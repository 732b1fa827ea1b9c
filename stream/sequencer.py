"""Offset order per events partition: what the worker applies, and when it must seek back.

The worker's state records carry the offset of the last message they applied, so the state,
not the consumer group, says where a partition resumes: at that offset plus one (the worker
commits exactly that). Faust's consumer can still pass messages by: it skips messages whose
rebalance generation is stale, and it can drop part of a fetch while its fetcher records the
whole of it as read (the restart test's partition whose 3,211 messages never arrived, a stress
run's 640 missing windows: README, Known limits).

A :class:`PartitionSequencer` turns that loss into a re-read. Given the offset the state wants
next, it admits messages in offset order, drops repeats, and on a hole asks the worker to seek
the partition back to the wanted offset, dropping what was fetched before the seek took
effect. A re-fetch that again lands past the hole (a message at or below one already dropped
arrives) asks for another seek: Faust's fetcher can overrule a seek (a message of the fetch
it was passing on marks the partition read beyond it, and it drops the re-fetch below that).
After ``MAX_SEEKS`` seeks the hole is taken as real and admitted, counted: Kafka's retention
deleted those messages, or a transactional producer's commit markers hold the offsets. Pure
logic, one instance per partition, dropped when the partition is revoked.

>>> seq = PartitionSequencer()
>>> step = seq.admit(next_offset=10, offsets=[10, 11, 14, 15])
>>> step.admitted, step.seek_to
([10, 11], 12)
>>> seq.admit(next_offset=12, offsets=[16, 12, 13, 14]).admitted
[12, 13, 14]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(slots=True)
class Admission:
    """What to do with one batch of a partition's offsets, in their arrival order."""

    admitted: list[int] = field(default_factory=list)  # apply these, in this order
    seek_to: int | None = None  # seek the partition here before anything else of it
    gap: int = 0  # offsets admitted as missing from the log after a re-fetch confirmed it


MAX_SEEKS = 10  # seeks back to one hole before it is taken as real


@dataclass(slots=True)
class PartitionSequencer:
    """Admits one partition's messages strictly in offset order from the state's next offset."""

    # The offset the seeks ask for, how many were asked, and the highest offset dropped since
    # the last one: a message at or below it arrives from a re-fetch, not from before a seek.
    awaiting: int | None = None
    seeks: int = 0
    dropped_high: int = -1

    def admit(self, next_offset: int | None, offsets: Sequence[int]) -> Admission:
        """Sort ``offsets`` (one partition's, in arrival order) into apply, drop and seek.

        ``next_offset`` is the offset the partition's state applies next, or ``None`` when
        not known (the first message to arrive then starts the partition).
        """
        step = Admission()
        want = next_offset
        for offset in offsets:
            if want is None or offset == want:
                step.admitted.append(offset)
                want = offset + 1
                self.awaiting, self.seeks = None, 0
            elif offset < want:
                continue  # applied already: a re-read after a restart, seek or rebalance
            elif self.awaiting != want or (offset <= self.dropped_high and self.seeks < MAX_SEEKS):
                # A hole, new or still there after a re-fetch: seek back to it, and drop what
                # follows until the re-fetch arrives.
                self.seeks = 1 if self.awaiting != want else self.seeks + 1
                self.awaiting, self.dropped_high = want, offset
                step.seek_to = want
            elif offset > self.dropped_high:
                self.dropped_high = offset  # fetched before the seek took effect
            else:
                # Re-fetched past the hole MAX_SEEKS times: the log has nothing there.
                step.gap += offset - want
                step.admitted.append(offset)
                want = offset + 1
                self.awaiting, self.seeks = None, 0
        return step
