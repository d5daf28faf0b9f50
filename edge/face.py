"""The plain value a detector produces."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
"""Landmark order, as seen in the image: ``left_eye`` is the eye nearer the image's left edge."""


@dataclass(frozen=True)
class Face:
    """A detected face in frame pixel coordinates."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    score: float  # detector confidence in [0, 1]
    landmarks: np.ndarray  # (5, 2) float32 x, y in LANDMARK_NAMES order

    @property
    def width(self) -> float:
        """Box width in pixels."""
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        """Box height in pixels."""
        return self.box[3] - self.box[1]
