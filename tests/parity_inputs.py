"""Deterministic model inputs built from photos, shared by the fixture recorder and the tests.

Only numpy and OpenCV: the parity tests run without TensorFlow.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.vision.liveness import crop as antispoof_crop  # noqa: F401  (re-exported for the fixture tools)
from edge.vision.preprocess import normalise_fixed, normalise_prewhiten  # noqa: F401  (re-exported for the fixture tools)


def read_rgb(path: Path) -> np.ndarray:
    """Read a photo as an RGB uint8 array, or raise naming the file."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"{path}: cannot read image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def crop_resized(image_rgb: np.ndarray, box: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
    """Crop integer box (x1, y1, x2, y2), clipped to the image, and resize to (height, width) with INTER_AREA."""
    height, width = image_rgb.shape[:2]
    x1, y1, x2, y2 = (int(v) for v in box)
    x1, y1 = max(x1, 0), max(y1, 0)
    x2, y2 = min(x2, width), min(y2, height)
    crop = image_rgb[y1:y2, x1:x2]
    return cv2.resize(crop, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def read_bgr(path: Path) -> np.ndarray:
    """Read a photo as OpenCV gives it (BGR uint8), or raise naming the file."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"{path}: cannot read image")
    return image
