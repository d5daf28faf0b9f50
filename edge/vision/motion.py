"""Did anything change in front of the camera? A cheap measure on a small grey thumbnail.

Each frame is shrunk to a grey thumbnail (160 px wide by default, one bilinear step: each of its
pixels the mean of 2x2 frame pixels) and compared with a background model:

- a **per-pixel noise estimate**: the running mean of the squared difference to the background over
  the frames a pixel did not change in, so a pixel changed when its difference exceeds
  ``sensitivity`` times its own noise (foliage and flicker need more than a still wall), never less
  than ``min_noise`` grey levels;
- a 3x3 opening of the changed pixels drops isolated noise; motion is a connected region of at least
  ``min_area`` of the thumbnail, and the box around all such regions is mapped back to frame
  coordinates;
- an **exposure check** when something changed: if the median ratio of frame to background (over a
  sample of pixels bright enough in both) is not 1, the background is rescaled by it and compared
  again, so an auto-exposure step or a cloud (every pixel brighter or darker by one factor) is no
  motion; a still scene never pays for it;
- a **running average** background: each pixel moves ``learning_rate`` of the way to each frame where
  it did not change (slow light changes are absorbed), ``moving_learning_rate`` where it did (a parked
  object becomes background within seconds, a passer-by does not);
- more than ``relearn_area`` changed at once (a light switched on, infrared night mode) relearns the
  background from that frame.

Plain values in and out; every buffer is allocated once per frame size.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

GAIN_SAMPLE_STEP = 7  # every 7th thumbnail pixel takes part in the exposure estimate (~2,700 of 19,200)
GAIN_MIN_LEVEL = 12.0  # pixels darker than this (in frame or background) say nothing about the exposure
GAIN_TOLERANCE = 0.02  # an exposure within 2% of the background's is no exposure change
INITIAL_NOISE = 2.0  # grey levels: the noise assumed before any is measured


@dataclass(frozen=True)
class MotionSettings:
    """The background model and what counts as motion (defaults: docs/detector.md, "Motion gating")."""

    thumbnail_width: int = 160  # grey thumbnail width, pixels; its height keeps the frame's aspect
    sensitivity: float = 4.0  # a pixel changed when it differs from the background by this many times its noise
    min_noise: float = 1.0  # grey levels: the least noise assumed per pixel (a noiseless or quantised scene)
    min_area: float = 0.002  # share of the thumbnail that must change (0.002: 38 of 160x120 pixels)
    learning_rate: float = 0.05  # share of the way an unchanged pixel's background moves to each frame
    moving_learning_rate: float = 0.01  # the same for a changed pixel: something that stays becomes background
    relearn_area: float = 0.7  # more than this share changed at once: the background is relearnt from the frame

    def __post_init__(self) -> None:
        if not 16 <= self.thumbnail_width <= 640:
            raise ValueError(f"thumbnail_width must be between 16 and 640, got {self.thumbnail_width}")
        if self.sensitivity <= 0 or self.min_noise <= 0:
            raise ValueError("sensitivity and min_noise must be positive")
        for name in ("min_area", "learning_rate", "moving_learning_rate", "relearn_area"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value}")


@dataclass(frozen=True)
class Motion:
    """What one frame showed: whether it moved, how much of it, and where (frame pixels)."""

    moved: bool
    area: float  # share of the thumbnail that changed, 0..1
    box: tuple[int, int, int, int] | None  # x1, y1, x2, y2 (exclusive) around every change; None when nothing moved
    relearnt: bool = False  # the background was relearnt from this frame (the first frame, a sudden change)


class MotionDetector:
    """Keeps a background of a camera's view and tells for each frame what changed."""

    def __init__(self, settings: MotionSettings | None = None) -> None:
        self.settings = settings or MotionSettings()
        self._frame_shape: tuple[int, ...] | None = None
        self._kernel = np.ones((3, 3), np.uint8)

    def _allocate(self, frame_shape: tuple[int, ...]) -> None:
        height, width = frame_shape[:2]
        thumb_w = min(self.settings.thumbnail_width, width)
        thumb_h = max(1, round(height * thumb_w / width))
        shape = (thumb_h, thumb_w)
        self._frame_shape = frame_shape
        self._scale = (width / thumb_w, height / thumb_h)
        self._small = np.empty((*shape, *frame_shape[2:]), np.uint8)
        self._grey = np.empty(shape, np.uint8)
        self._background = np.empty(shape, np.float32)
        self._variance = np.empty(shape, np.float32)  # per-pixel noise, grey levels squared
        self._difference = np.empty(shape, np.float32)
        self._squared = np.empty(shape, np.float32)
        self._limit = np.empty(shape, np.float32)
        self._changed = np.empty(shape, np.uint8)  # 255 where a pixel changed
        self._moving = np.empty(shape, np.uint8)  # the changed pixels that have changed neighbours (3x3 opening)
        self._still = np.empty(shape, np.uint8)
        self._labels = np.empty(shape, np.int32)
        samples = self._grey.reshape(-1)[::GAIN_SAMPLE_STEP].size
        self._ratios = np.empty(samples, np.float32)
        self._dark = np.empty(samples, bool)
        self._min_changed = max(1, round(self.settings.min_area * self._grey.size))
        self._fresh = True

    def update(self, frame: np.ndarray) -> Motion:
        """Compare a BGR (or grey) uint8 frame with the background, then learn from it."""
        if frame.shape != self._frame_shape:
            self._allocate(frame.shape)
        s = self.settings
        # one bilinear step: each thumbnail pixel is the mean of 2x2 frame pixels (it reads half the frame's rows)
        cv2.resize(frame, self._small.shape[1::-1], dst=self._small, interpolation=cv2.INTER_LINEAR)
        if self._small.ndim == 3:
            cv2.cvtColor(self._small, cv2.COLOR_BGR2GRAY, dst=self._grey)
        else:
            np.copyto(self._grey, self._small)
        if self._fresh:
            return self._relearn(initial=True)
        changed = self._compare()
        if changed >= self._min_changed and self._exposure_changed():
            changed = self._compare()
        area = changed / self._grey.size
        if area > s.relearn_area:
            return self._relearn(initial=False, area=area)
        self._learn()
        box = self._moving_box() if changed >= self._min_changed else None
        return Motion(box is not None, area, box)

    def _moving_box(self) -> tuple[int, int, int, int] | None:
        """Frame box around the changed regions of at least ``min_area`` each (a few pixels still settling
        after an exposure step elsewhere do not widen it); None when there are none."""
        count, _, stats, _ = cv2.connectedComponentsWithStats(self._moving, self._labels, connectivity=8)
        regions = stats[1:count]
        regions = regions[regions[:, cv2.CC_STAT_AREA] >= self._min_changed]
        if not len(regions):
            return None
        x1, y1 = regions[:, cv2.CC_STAT_LEFT].min(), regions[:, cv2.CC_STAT_TOP].min()
        x2 = (regions[:, cv2.CC_STAT_LEFT] + regions[:, cv2.CC_STAT_WIDTH]).max()
        y2 = (regions[:, cv2.CC_STAT_TOP] + regions[:, cv2.CC_STAT_HEIGHT]).max()
        return self._to_frame(int(x1), int(y1), int(x2), int(y2))

    def _compare(self) -> int:
        """Mark the pixels that differ from the background by more than their noise allows; how many are
        left after the opening."""
        np.subtract(self._grey, self._background, out=self._difference)
        np.multiply(self._difference, self._difference, out=self._squared)
        np.multiply(self._variance, self.settings.sensitivity ** 2, out=self._limit)
        cv2.compare(self._squared, self._limit, cv2.CMP_GT, dst=self._changed)
        cv2.morphologyEx(self._changed, cv2.MORPH_OPEN, self._kernel, dst=self._moving)
        return cv2.countNonZero(self._moving)

    def _exposure_changed(self) -> bool:
        """Whether the frame is the background under another exposure: the median ratio of frame to
        background over a sample of pixels bright enough in both differs from 1. If so the background
        is rescaled to the frame's exposure (an exposure step or a cloud scales every pixel alike)."""
        frame = self._grey.reshape(-1)[::GAIN_SAMPLE_STEP]
        background = self._background.reshape(-1)[::GAIN_SAMPLE_STEP]
        np.minimum(frame, background, out=self._ratios)
        np.less_equal(self._ratios, GAIN_MIN_LEVEL, out=self._dark)
        valid = self._dark.size - int(np.count_nonzero(self._dark))
        if valid < self._dark.size // 4:  # a dark scene: no reliable gain
            return False
        np.divide(frame, np.maximum(background, 1.0, out=self._ratios), out=self._ratios)
        np.copyto(self._ratios, np.inf, where=self._dark)  # sorted past every valid ratio
        middle = valid // 2
        self._ratios.partition(middle)
        gain = float(self._ratios[middle])
        if abs(gain - 1.0) <= GAIN_TOLERANCE:
            return False
        self._background *= gain
        return True

    def _learn(self) -> None:
        """Move the background towards the frame (slowly where it moved) and the noise estimate towards the
        squared difference of the still pixels."""
        s = self.settings
        cv2.bitwise_not(self._moving, dst=self._still)
        cv2.accumulateWeighted(self._grey, self._background, s.learning_rate, mask=self._still)
        cv2.accumulateWeighted(self._grey, self._background, s.moving_learning_rate, mask=self._moving)
        cv2.accumulateWeighted(self._squared, self._variance, s.learning_rate, mask=self._still)
        np.maximum(self._variance, s.min_noise ** 2, out=self._variance)

    def _relearn(self, initial: bool, area: float = 1.0) -> Motion:
        np.copyto(self._background, self._grey)
        if initial:
            self._variance.fill(max(INITIAL_NOISE, self.settings.min_noise) ** 2)
            self._fresh = False
        height, width = self._frame_shape[:2]
        return Motion(True, area, (0, 0, width, height), relearnt=True)

    def _to_frame(self, x1: int, y1: int, x2: int, y2: int) -> tuple[int, int, int, int]:
        scale_x, scale_y = self._scale
        height, width = self._frame_shape[:2]
        return (max(0, int(x1 * scale_x)), max(0, int(y1 * scale_y)),
                min(width, int(np.ceil(x2 * scale_x))), min(height, int(np.ceil(y2 * scale_y))))
