"""Detection on a video stream helped by the previous frame: the full pyramid only now and then."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..face import Face
from .detector import MTCNNDetector, Region, to_rgb
from .nms import iou_matrix


@dataclass(frozen=True)
class TrackingSettings:
    """When to fall back to the full cascade, and how tracked faces are kept."""

    full_every: int = 7  # run the full cascade at least every this many frames (new faces appear then)
    keep_threshold: float = 0.3  # O-Net score that keeps a face already tracked (a new face needs onet_threshold)
    growth: tuple[float, ...] = (0.9, 1.0, 1.15, 1.3)  # search boxes around each tracked face, as factors of its size
    staged: bool = True  # search at growth[0] first, at the other factors only candidates that box does not keep
    scene_change: float = 20.0  # mean grey-level change (0-255) of a 32x18 thumbnail that forces a full pass (a cut)
    full_when_lost: bool = True  # a reported face not re-found by the tracking pass forces a full pass on that frame

    def __post_init__(self) -> None:
        if self.full_every < 1:
            raise ValueError(f"full_every must be at least 1, got {self.full_every}")
        if not 0.0 <= self.keep_threshold <= 1.0:
            raise ValueError(f"keep_threshold must be in [0, 1], got {self.keep_threshold}")
        if not self.growth or min(self.growth) <= 0:
            raise ValueError(f"growth must be positive factors, got {self.growth}")
        if self.scene_change <= 0:
            raise ValueError(f"scene_change must be positive, got {self.scene_change}")


def _overlaps(face: Face, others: list[Face], threshold: float = 0.5) -> bool:
    """Whether ``face`` overlaps any of ``others`` by at least ``threshold`` IoU."""
    if not others:
        return False
    boxes = np.array([other.box for other in others], np.float64)
    return bool(iou_matrix(np.array([face.box], np.float64), boxes).max() >= threshold)


class TrackingDetector:
    """Re-finds last frame's candidates with O-Net alone, and runs the full cascade every
    ``full_every`` frames, whenever nothing is tracked, when the scene changes at once (a cut,
    a camera switch) and, with ``full_when_lost``, when a reported face is not re-found.

    With ``staged``, a tracking pass runs O-Net on one box per candidate (``growth[0]``) and
    on the other ``growth`` boxes only for the candidates that first box does not keep.

    Tracked are the faces and the near-misses (O-Net score at least ``keep_threshold``);
    a near-miss is reported once it reaches the detector's O-Net threshold, and a reported
    face stays reported while it keeps ``keep_threshold``. A face that appears between
    full runs away from any tracked candidate is found at the next full run.
    """

    def __init__(self, detector: MTCNNDetector, settings: TrackingSettings | None = None) -> None:
        self.detector = detector
        self.settings = settings or TrackingSettings()
        self._candidates: list[Face] = []
        self._reported: list[Face] = []
        self._since_full = 0
        self._thumbnail: np.ndarray | None = None
        self._timings: dict[str, float] = {}
        self.full_runs = 0
        self.tracked_runs = 0

    @property
    def timings(self) -> dict[str, float]:
        """Per-stage milliseconds of the last frame (both passes when a tracking pass fell back)."""
        return self._timings

    @property
    def followed(self) -> list[tuple[float, float, float, float]]:
        """Boxes of the faces and near-misses the next tracking pass searches around."""
        return [face.box for face in self._candidates]

    def reset(self) -> None:
        """Forget the tracked faces (a new scene or a reopened camera)."""
        self._candidates = []
        self._reported = []
        self._thumbnail = None

    def _scene_changed(self, rgb: np.ndarray) -> bool:
        # Every 5x5 block of a 160x90 nearest-pixel sample averaged: cheap on any frame size, and steady.
        sampled = cv2.resize(rgb, (160, 90), interpolation=cv2.INTER_NEAREST)
        small = cv2.resize(sampled, (32, 18), interpolation=cv2.INTER_AREA)
        thumbnail = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
        previous, self._thumbnail = self._thumbnail, thumbnail
        return previous is not None and float(np.mean(np.abs(thumbnail - previous))) > self.settings.scene_change

    def detect(self, frame: object, region: Region | None = None) -> list[Face]:
        """Faces in a BGR frame of the stream; a full pass on this frame searches only ``region`` when given
        (:meth:`MTCNNDetector.detect_rgb`)."""
        rgb = to_rgb(frame)
        s = self.settings
        cut = self._scene_changed(rgb)
        full = cut or not self._candidates or self._since_full + 1 >= s.full_every
        self._timings = {}
        if not full:
            candidates = self.detector.detect_near(rgb, [face.box for face in self._candidates], s.growth,
                                                   s.keep_threshold, s.keep_threshold if s.staged else None)
            self._add_timings()
            self.tracked_runs += 1
            self._since_full += 1
            full = s.full_when_lost and any(not _overlaps(face, candidates, 0.3) for face in self._reported)
        if full:
            candidates = self.detector.detect_rgb(rgb, onet_threshold=s.keep_threshold, region=region)
            self._add_timings()
            self.full_runs += 1
            self._since_full = 0
        threshold = self.detector.settings.onet_threshold
        reported = [face for face in candidates
                    if face.score > threshold or _overlaps(face, self._reported)]
        self._candidates, self._reported = candidates, reported
        return reported

    def _add_timings(self) -> None:
        for stage, ms in self.detector.timings.items():
            self._timings[stage] = self._timings.get(stage, 0.0) + ms
