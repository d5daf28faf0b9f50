"""Cutting a detected face out of the frame the way the embedder expects it."""
from __future__ import annotations

import cv2
import numpy as np

from .crop import square_crops
from .face import Face


def margin_crop(rgb: np.ndarray, face: Face, size: int = 160, margin: int = 32) -> np.ndarray:
    """The tutorial's crop: the box, squared about its centre, grown so the face fills
    ``size - margin`` of ``size`` pixels, then resized to ``size`` (outside the frame is black)."""
    x1, y1, x2, y2 = face.box
    side = max(x2 - x1, y2 - y1) * size / (size - margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    box = np.round([[cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]])
    return square_crops(rgb, box, size, cv2.INTER_AREA)[0]
