"""Numeric per-stream state as compact JSON-ready text (base64 of little-endian floats).

A float written as JSON text costs 10-20 bytes; packed it costs 2 or 4 (+1/3 for base64). The
LSTM states live in a Faust table for every stream, so this keeps them near 1 KB a stream.
"""

from __future__ import annotations

import base64

import numpy as np


def pack(values: np.ndarray, dtype: str = "<f4") -> str:
    """``values`` as base64 text of ``dtype`` (float32 by default, "<f2" for float16)."""
    return base64.b64encode(np.ascontiguousarray(values, dtype=dtype).tobytes()).decode("ascii")


def unpack(text: str, dtype: str = "<f4") -> np.ndarray:
    """The array :func:`pack` wrote, as float64 for arithmetic."""
    return np.frombuffer(base64.b64decode(text), dtype=dtype).astype(np.float64)
