"""Pixel normalisations the embedders and detectors expect, selected by name from the manifest."""
from __future__ import annotations

import math
from typing import Callable

import cv2
import numpy as np

_FIXED_TABLE = ((np.arange(256, dtype=np.float32) - 127.5) * (1.0 / 128.0)).astype(np.float32)


def normalise_fixed(pixels: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(x - 127.5) / 128 as float32; uint8 pixels through a 256-entry table (one pass, ~8x faster).

    ``out``, a float32 array of the same shape, receives the result instead of a new array."""
    if out is None:
        out = np.empty(pixels.shape, np.float32)
    if pixels.dtype == np.uint8 and pixels.size:
        rows = pixels.reshape(-1, pixels.shape[-1])
        cv2.LUT(rows, _FIXED_TABLE, dst=out.reshape(rows.shape))
    else:
        np.multiply(pixels.astype(np.float32) - 127.5, 1.0 / 128.0, out=out)
    return out


def normalise_prewhiten(pixels: np.ndarray) -> np.ndarray:
    """Per-image standardisation of (..., H, W, C): (x - mean) / max(std, 1/sqrt(H*W*C))."""
    x = pixels.astype(np.float32)
    axes = (-3, -2, -1)
    count = x.shape[-3] * x.shape[-2] * x.shape[-1]
    mean = x.mean(axis=axes, keepdims=True)
    std = np.maximum(x.std(axis=axes, keepdims=True), 1.0 / math.sqrt(count))
    return (x - mean) / std


NORMALISERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "fixed": normalise_fixed,
    "prewhiten": normalise_prewhiten,
}
