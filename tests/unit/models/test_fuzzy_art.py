"""Batched fuzzy ART: matches, dual-vigilance learning and the bounded memory, on small cases
worked out by hand."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from gridalarm.models import fuzzy_art

ENERGY = (1, 3)  # patterns of two features: the second one is the "newest value"


def memory(m: int, capacity: int = 4, dim: int = 4) -> fuzzy_art.Memory:
    return fuzzy_art.Memory.empty(m, capacity, dim)


def test_encode_complements_exactly_on_the_grid() -> None:
    x = fuzzy_art.encode(np.array([[0.0, 0.5, 1.0, 1.7]]))
    assert x.tolist() == [[0, 128, 255, 255, 255, 127, 0, 0]]
    assert set(x.sum(axis=1).tolist()) == {4 * 255}  # every pattern has the same L1 norm


@pytest.mark.parametrize("width", [8, 32, 256, 12, 264])
def test_byte_sums_equal_plain_sums_at_every_width(width: int) -> None:
    # 8..256 in whole words take the word-wise path, 12 and 264 the plain sum; all-255 rows
    # are the largest sums, where a lane carrying into the next would show.
    a = np.random.default_rng(width).integers(0, 256, (40, 5, width), dtype=np.uint8)
    a[0] = 255
    got = fuzzy_art.byte_sums(a)
    assert got.dtype == np.uint16
    assert np.array_equal(got, a.sum(axis=-1, dtype=np.uint16))
    assert np.array_equal(fuzzy_art.byte_sums(a[:, :, ::-1]), got)  # not contiguous: plain


def test_module_doctests_pass() -> None:
    failures, tried = doctest.testmod(fuzzy_art)
    assert tried > 0 and failures == 0


def test_match_of_a_box_against_a_pattern() -> None:
    # Category box [0.2, 0.4] x [0.6, 0.8] ... as weights w = [lo1, lo2, 1-hi1, 1-hi2].
    w = np.array([[[51, 153, 153, 51]]], np.uint8)
    box = fuzzy_art.Memory(w, np.zeros((1, 1), np.uint16), np.array([[408]], np.uint16),
                           np.array([1]))  # fmt: skip
    x = fuzzy_art.encode(np.array([[0.2, 0.6]]))  # [51, 153, 204, 102]: inside the box
    got = fuzzy_art.match(x, box, ENERGY)
    assert got.best[0] == 1.0  # fs = 408/408, es = (153+51)/(153+51)
    outside = fuzzy_art.encode(np.array([[0.2, 1.0]]))  # [51, 255, 204, 0]
    got = fuzzy_art.match(outside, box, ENERGY)
    # em = [51, 153, 153, 0]: fs = 357/408, es = 153/204
    assert np.isclose(got.best[0], (357 / 408) ** 3 * (153 / 204) ** 2)
    assert np.isclose(got.energy[0], 153 / 204)


def test_learning_resonates_admits_or_flags_a_novel_pattern() -> None:
    mem = memory(3)
    x = fuzzy_art.encode(np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]]))
    stamp = np.array([1, 1, 1])
    low, high = np.full(3, 0.5), np.full(3, 0.9)
    novel, best, _ = fuzzy_art.learn(mem, x, stamp, low, high, ENERGY)
    # Empty memories: the all-ones box is seeded, the pattern is not learned, and it is novel.
    assert novel.all() and (best == 0).all() and mem.count.tolist() == [1, 1, 1]
    novel, best, _ = fuzzy_art.learn(mem, x, stamp + 1, low, high, ENERGY)
    assert np.allclose(best, 0.5**3 * 0.5**2)  # only the ones box: fs = 1/2, es = 1/2
    assert novel.all() and mem.count.tolist() == [2, 2, 2]  # stored as a category of a new kind
    # Same pattern again: resonates (M = 1) and is learned, no new category.
    novel, best, _ = fuzzy_art.learn(mem, x, stamp + 2, low, high, ENERGY)
    assert not novel.any() and np.allclose(best, 1.0) and mem.count.tolist() == [2, 2, 2]
    # A nearby pattern: above the lower vigilance, below the upper one -> admitted, not novel.
    near = fuzzy_art.encode(np.array([[0.5, 0.45], [0.5, 0.45], [0.5, 0.45]]))
    novel, best, _ = fuzzy_art.learn(mem, near, stamp + 3, low, high, ENERGY)
    assert not novel.any() and (best < 0.9).all() and (best >= 0.5).all()
    assert mem.count.tolist() == [3, 3, 3]


def test_resonance_shrinks_the_box_to_the_elementwise_minimum() -> None:
    mem = memory(1)
    a = fuzzy_art.encode(np.array([[0.4, 0.5]]))
    b = fuzzy_art.encode(np.array([[0.42, 0.5]]))
    low = high = np.array([0.5])
    for k, x in enumerate((a, a, b)):
        fuzzy_art.learn(mem, x, np.array([k]), low, high, ENERGY)
    assert mem.weights[0, 1].tolist() == np.minimum(a[0], b[0]).tolist()
    assert mem.sizes[0, 1] == np.minimum(a[0], b[0]).sum()  # the size kept follows the box


def test_full_memory_evicts_the_least_recently_used_category() -> None:
    mem = memory(1, capacity=2)
    low = high = np.array([0.99])
    patterns = [fuzzy_art.encode(np.array([[v, v]])) for v in (0.1, 0.5, 0.9)]
    fuzzy_art.learn(mem, patterns[0], np.array([0]), low, high, ENERGY)
    fuzzy_art.learn(mem, patterns[0], np.array([1]), low, high, ENERGY)
    assert mem.count.tolist() == [2]  # the ones box and 0.1
    fuzzy_art.learn(mem, patterns[1], np.array([2]), low, high, ENERGY)
    # Full: the ones box (last used at 0) made room for 0.5; 0.1 (used at 1) stays.
    kept = {tuple(w) for w in mem.weights[0].tolist()}
    assert kept == {tuple(patterns[0][0].tolist()), tuple(patterns[1][0].tolist())}
    fuzzy_art.learn(mem, patterns[2], np.array([3]), low, high, ENERGY)
    kept = {tuple(w) for w in mem.weights[0].tolist()}
    assert kept == {tuple(patterns[1][0].tolist()), tuple(patterns[2][0].tolist())}
