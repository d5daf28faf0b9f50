"""Face quality: is a detected face good enough to say who it is (size, sharpness, pose)?

Used the same way by enrollment (skip a photo) and by the daemon (do not decide on a frame).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..config import QualityConfig
from ..face import Face


@dataclass(frozen=True)
class FaceQuality:
    """Measured properties of one face."""

    height_px: float  # detector box height in the source image
    sharpness: float  # variance of the Laplacian of the aligned crop in grey
    yaw: float  # |nose x - eyes' midpoint x| / eye distance: 0 frontal, ~0.5+ in profile


def sharpness(crop_rgb: np.ndarray) -> float:
    """Variance of the Laplacian of an aligned face crop (higher is sharper)."""
    grey = cv2.cvtColor(np.ascontiguousarray(crop_rgb), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def yaw(face: Face) -> float:
    """How far the face is turned, from its landmarks (0 when frontal)."""
    left_eye, right_eye, nose = face.landmarks[0], face.landmarks[1], face.landmarks[2]
    eye_distance = float(np.hypot(*(right_eye - left_eye)))
    if eye_distance < 1e-6:
        return float("inf")
    axis = (right_eye - left_eye) / eye_distance
    return abs(float(np.dot(nose - (left_eye + right_eye) / 2, axis))) / eye_distance


def assess(face: Face, crop_rgb: np.ndarray) -> FaceQuality:
    """Quality figures of ``face`` and its aligned crop."""
    return FaceQuality(height_px=face.height, sharpness=sharpness(crop_rgb), yaw=yaw(face))


def too_small(face: Face, settings: QualityConfig) -> str | None:
    """The size part of :func:`rejection`, which needs no aligned crop (checked first on a hot path)."""
    return _size_problem(face.height, settings)


def _size_problem(height_px: float, settings: QualityConfig) -> str | None:
    return f"too small ({height_px:.0f} px < {settings.min_face_px})" if height_px < settings.min_face_px else None


def rejection(quality: FaceQuality, settings: QualityConfig) -> str | None:
    """Why the face should not be used, in a few words, or None when it is good enough."""
    size = _size_problem(quality.height_px, settings)
    if size is not None:
        return size
    if quality.sharpness < settings.min_sharpness:
        return f"blurred (sharpness {quality.sharpness:.0f} < {settings.min_sharpness:g})"
    if quality.yaw > settings.max_yaw:
        return f"turned away (yaw {quality.yaw:.2f} > {settings.max_yaw:g})"
    return None
