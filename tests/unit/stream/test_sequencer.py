"""The worker's per-partition offset sequencer: apply in order, seek back over holes."""

from __future__ import annotations

import doctest

from gridalarm.stream import sequencer
from gridalarm.stream.sequencer import MAX_SEEKS, PartitionSequencer


def test_module_examples_run() -> None:
    assert doctest.testmod(sequencer).failed == 0


def test_an_empty_state_starts_at_the_first_message_that_arrives() -> None:
    step = PartitionSequencer().admit(None, [40, 41, 42])
    assert step.admitted == [40, 41, 42]
    assert step.seek_to is None and step.gap == 0


def test_messages_already_applied_are_dropped() -> None:
    step = PartitionSequencer().admit(5, [3, 4, 5, 6])
    assert step.admitted == [5, 6]
    assert step.seek_to is None


def test_a_hole_asks_for_one_seek_and_drops_everything_fetched_before_it_took_effect() -> None:
    seq = PartitionSequencer()
    first = seq.admit(10, [10, 13, 14])
    assert first.admitted == [10]
    assert first.seek_to == 11
    # More of the pre-seek fetch: still past the hole, no second seek asked for.
    second = seq.admit(11, [15, 16])
    assert second.admitted == [] and second.seek_to is None
    # The re-fetch arrives from the wanted offset: everything in order, then onwards.
    third = seq.admit(11, [11, 12, 13, 14, 15, 16, 17])
    assert third.admitted == [11, 12, 13, 14, 15, 16, 17]
    assert third.gap == 0


def test_a_refetch_that_lands_past_the_hole_asks_for_another_seek() -> None:
    seq = PartitionSequencer()
    assert seq.admit(10, [13, 14]).seek_to == 10
    # Faust's fetcher overruled the seek (to a committed offset past the hole): 12 again.
    again = seq.admit(10, [12, 13])
    assert again.admitted == [] and again.seek_to == 10
    assert seq.admit(10, [10, 11, 12, 13]).admitted == [10, 11, 12, 13]


def test_a_hole_still_there_after_max_seeks_is_admitted_and_counted() -> None:
    seq = PartitionSequencer()
    for _ in range(MAX_SEEKS):
        step = seq.admit(10, [13, 14])
        assert step.seek_to == 10 and step.admitted == []
    # The log's first message at or after 10 is 13 every time: offsets 10 to 12 are not in
    # the log (deleted by retention, or a transaction's markers).
    step = seq.admit(10, [13, 14, 15])
    assert step.admitted == [13, 14, 15]
    assert step.gap == 3
    assert step.seek_to is None


def test_a_new_hole_after_an_admitted_one_asks_for_a_seek_again() -> None:
    seq = PartitionSequencer()
    for _ in range(MAX_SEEKS + 1):
        step = seq.admit(10, [12])
    assert step.admitted == [12]
    step = seq.admit(13, [20])
    assert step.admitted == [] and step.seek_to == 13


def test_the_seek_and_the_refetch_can_share_one_batch() -> None:
    seq = PartitionSequencer()
    step = seq.admit(0, [0, 1, 5, 6, 2, 3, 4, 5, 6, 7])
    assert step.seek_to == 2
    assert step.admitted == [0, 1, 2, 3, 4, 5, 6, 7]
