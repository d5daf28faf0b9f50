"""Detection only when the scene asks for it: an empty, still view costs a motion measure a frame.

A door camera looks at nobody most of the day. :class:`GatedDetector` runs the face finder on a
frame when

- faces were reported on the frame before (**tracking**: they are followed on every frame, exactly as
  without the gate, so recognition sees what it saw before);
- something moved (**motion**): where the motion fits a window of half the frame's width and height
  (with a margin), the pyramid searches that window only (**region**), else the whole frame;
- nothing moved, but ``keepalive_s`` went by since the last search (**keepalive**: a person standing
  still, or a face the motion measure missed, is found within that time);

and skips it otherwise (**skipped**: no faces). When no face is reported, the finder may still follow
near-misses (faces not yet sure enough) with tracking passes; it is reset, so that the search is a full
pass, after skipped frames (what it followed is stale) and when the motion is away from everything it
follows (somebody walked in elsewhere: a tracking pass would not see them).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..face import Face
from .detector import Region
from .motion import MotionDetector

REASONS = ("tracking", "motion", "region", "keepalive", "skipped")  # why a frame was searched, or not
WINDOW = 0.5  # a region search covers this share of the frame's width and of its height: one extra set of
# P-Net input shapes (a quarter of the full frame's pixels), where free-sized regions would build new
# interpreters on most frames


class FaceFinder(Protocol):
    """MTCNNDetector or TrackingDetector."""

    @property
    def followed(self) -> list[tuple[float, float, float, float]]: ...

    def detect(self, frame: object, region: Region | None = None) -> list[Face]: ...

    def reset(self) -> None: ...


@dataclass(frozen=True)
class GateSettings:
    """When a frame without tracked faces is searched."""

    keepalive_s: float = 2.0  # nothing moving, nobody tracked: a full pass at least this often
    region: bool = True  # search only a half-width, half-height window when the motion fits in one
    region_margin: float = 0.5  # the motion's box grows by this share of its larger side on each side

    def __post_init__(self) -> None:
        if self.keepalive_s <= 0:
            raise ValueError(f"keepalive_s must be positive, got {self.keepalive_s}")
        if self.region_margin < 0:
            raise ValueError(f"region_margin must not be negative, got {self.region_margin}")


def search_window(box: Region, margin: float, frame_shape: tuple[int, ...]) -> Region | None:
    """The half-width, half-height window of a frame of ``frame_shape`` centred on ``box`` grown by
    ``margin`` of its larger side, moved inside the frame; None when the grown box does not fit in it."""
    x1, y1, x2, y2 = box
    height, width = frame_shape[:2]
    grow = margin * max(x2 - x1, y2 - y1)
    window_w, window_h = int(width * WINDOW), int(height * WINDOW)
    if x2 - x1 + 2 * grow > window_w or y2 - y1 + 2 * grow > window_h:
        return None
    left = int(np.clip((x1 + x2 - window_w) / 2, 0, width - window_w))
    top = int(np.clip((y1 + y2 - window_h) / 2, 0, height - window_h))
    return left, top, left + window_w, top + window_h


def motion_near(box: Region | None, followed: list[tuple[float, float, float, float]]) -> bool:
    """Whether the motion's ``box`` overlaps any of the ``followed`` boxes."""
    if box is None:
        return True  # no motion (a keep-alive): nothing new to look for
    x1, y1, x2, y2 = box
    return any(fx1 < x2 and x1 < fx2 and fy1 < y2 and y1 < fy2 for fx1, fy1, fx2, fy2 in followed)


class GatedDetector:
    """A face finder run only on the frames that may show a face (see the module's docstring)."""

    def __init__(self, finder: FaceFinder, motion: MotionDetector, settings: GateSettings | None = None) -> None:
        self.finder = finder
        self.motion = motion
        self.settings = settings or GateSettings()
        self.reason = ""  # why the last frame was searched, or "skipped" (one of REASONS)
        self.region: Region | None = None  # the window the last search covered; None: the whole frame
        self.motion_ms = 0.0  # the last frame's motion measure
        self._reported = False
        self._idle = False  # frames were skipped since the last search
        self._last_search: float | None = None

    def detect(self, frame: np.ndarray, now: float) -> list[Face]:
        """Faces in a BGR frame captured at ``now`` (seconds), or none when the frame is skipped."""
        started = time.perf_counter()
        motion = self.motion.update(frame)
        self.motion_ms = (time.perf_counter() - started) * 1000
        self.region = None
        if self._reported:
            self.reason = "tracking"
        elif motion.moved:
            if self.settings.region and not motion.relearnt and motion.box is not None:
                self.region = search_window(motion.box, self.settings.region_margin, frame.shape)
            self.reason = "motion" if self.region is None else "region"
        elif self._last_search is None or now - self._last_search >= self.settings.keepalive_s:
            self.reason = "keepalive"
        else:
            self.reason = "skipped"
            self._idle = True
            return []
        if self._idle or (self.reason != "tracking" and not motion_near(motion.box, self.finder.followed)):
            self.finder.reset()
        self._idle = False
        faces = self.finder.detect(frame, self.region)
        self._reported = bool(faces)
        self._last_search = now
        return faces
