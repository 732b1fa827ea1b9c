"""Packed per-stream state: base64 of little-endian float32 / float16, read back as float64."""

from __future__ import annotations

import base64
import math

import numpy as np
import pytest

from gridalarm.models.packing import pack, unpack


def test_float32_is_little_endian_base64() -> None:
    # 1.0f = 0x3F800000 -> bytes 00 00 80 3F; 2.0f = 0x40000000 -> 00 00 00 40
    assert pack(np.array([1.0])) == "AACAPw=="
    assert pack(np.array([1.0, 2.0])) == "AACAPwAAAEA="


def test_float16_is_little_endian_base64() -> None:
    # 1.0h = 0x3C00 -> bytes 00 3C; -2.0h = 0xC000 -> 00 C0
    assert pack(np.array([1.0]), "<f2") == "ADw="
    assert pack(np.array([1.0, -2.0]), "<f2") == "ADwAwA=="


def test_unpack_reads_hand_written_bytes() -> None:
    text = base64.b64encode(bytes([0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0])).decode()
    got = unpack(text)
    assert got.dtype == np.float64
    assert got.tolist() == [1.0, -2.0]
    half = base64.b64encode(bytes([0x00, 0x3C, 0x00, 0x7C])).decode()  # 1.0, +inf
    assert unpack(half, "<f2").tolist() == [1.0, math.inf]


def test_float32_round_trip_is_exact_for_float32_values() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(0.0, 1e3, size=200).astype(np.float32)
    values[:4] = [0.0, -0.0, np.finfo(np.float32).max, np.finfo(np.float32).tiny]
    got = unpack(pack(values))
    assert got.dtype == np.float64
    assert got.shape == (200,)
    np.testing.assert_array_equal(got, values.astype(np.float64))
    assert math.copysign(1.0, got[1]) == -1.0


def test_float32_round_trip_of_float64_is_within_float32_precision() -> None:
    values = np.array([0.1, 1.0 / 3.0, 123456.789, -7.25e-5])
    got = unpack(pack(values))
    np.testing.assert_allclose(got, values, rtol=2**-24, atol=0)
    assert got[0] != 0.1  # float64 0.1 is not a float32: precision really is float32


def test_float16_round_trip_rounds_to_half_precision() -> None:
    # float16 keeps 11 significant bits: integers exactly up to 2048, then steps of 2.
    values = np.array([0.5, 3.0, 2047.0, 2048.0, 2049.0, 2051.0, 65504.0, 0.1])
    got = unpack(pack(values, "<f2"), "<f2")
    assert got.dtype == np.float64
    assert got[:4].tolist() == [0.5, 3.0, 2047.0, 2048.0]
    assert got[4] == 2048.0  # 2049 is a tie: rounds to the even 2048
    assert got[5] == 2052.0  # 2051 is a tie: rounds to the even 2052
    assert got[6] == 65504.0  # the largest float16
    assert got[7] == 0.0999755859375  # 1638 / 16384: the float16 nearest 0.1


def test_nan_survives_both_widths() -> None:
    values = np.array([np.nan, 1.0])
    for dtype in ("<f4", "<f2"):
        got = unpack(pack(values, dtype), dtype)
        assert math.isnan(got[0]) and got[1] == 1.0


def test_multidimensional_input_is_flattened_in_row_order() -> None:
    values = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert unpack(pack(values)).tolist() == [1.0, 2.0, 3.0, 4.0]
    assert unpack(pack(values.T)).tolist() == [1.0, 3.0, 2.0, 4.0]


@pytest.mark.parametrize(
    ("count", "dtype", "chars"),
    [
        (0, "<f4", 0),
        (1, "<f4", 8),  # 4 bytes -> 2 base64 groups
        (3, "<f4", 16),  # 12 bytes -> 4 groups exactly
        (10, "<f4", 56),  # 40 bytes -> ceil(40 / 3) = 14 groups
        # the default lstm-forecast state, 3 + 2 * 32 + 4 * (13 features + their total)
        # floats: 492 bytes -> 164 groups
        (123, "<f4", 656),
        (1, "<f2", 4),
        (3, "<f2", 8),  # 6 bytes -> 2 groups
        (129, "<f2", 344),  # the default QuantileThreshold ring: 258 bytes -> 86 groups
    ],
)
def test_packed_size_in_characters(count: int, dtype: str, chars: int) -> None:
    text = pack(np.arange(count, dtype=np.float64), dtype)
    assert len(text) == chars
    assert text.isascii()
    assert len(unpack(text, dtype)) == count


def test_empty_round_trip() -> None:
    assert pack(np.array([])) == ""
    got = unpack("")
    assert got.shape == (0,) and got.dtype == np.float64
