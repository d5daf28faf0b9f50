"""Detection on a video stream helped by the previous frame: the full pyramid only now and then."""
from __future__ import annotations

from dataclasses import dataclass

from .detector import MTCNNDetector, to_rgb
from .face import Face


@dataclass(frozen=True)
class TrackingSettings:
    """When to fall back to the full cascade."""

    full_every: int = 10  # run the P-Net pyramid at least every this many frames (new faces appear then)

    def __post_init__(self) -> None:
        if self.full_every < 1:
            raise ValueError(f"full_every must be at least 1, got {self.full_every}")


class TrackingDetector:
    """Refines last frame's faces with R-Net/O-Net; runs the full cascade every ``full_every``
    frames, when there is nothing to track, or as soon as a tracked face is lost."""

    def __init__(self, detector: MTCNNDetector, settings: TrackingSettings | None = None) -> None:
        self.detector = detector
        self.settings = settings or TrackingSettings()
        self._previous: list[Face] = []
        self._since_full = 0
        self.full_runs = 0
        self.tracked_runs = 0

    @property
    def timings(self) -> dict[str, float]:
        """Per-stage milliseconds of the last frame."""
        return self.detector.timings

    def reset(self) -> None:
        """Forget the tracked faces (a new scene or a reopened camera)."""
        self._previous = []

    def detect(self, frame: object) -> list[Face]:
        """Faces in a BGR frame of the stream."""
        rgb = to_rgb(frame)
        attempt: dict[str, float] = {}
        if self._previous and self._since_full + 1 < self.settings.full_every:
            faces = self.detector.detect_near(rgb, [face.box for face in self._previous])
            if len(faces) >= len(self._previous):
                self.tracked_runs += 1
                self._since_full += 1
                self._previous = faces
                return faces
            attempt = dict(self.detector.timings)
        faces = self.detector.detect_rgb(rgb)
        for stage, ms in attempt.items():  # a failed tracking attempt costs time too
            self.detector.timings[stage] += ms
        self.full_runs += 1
        self._since_full = 0
        self._previous = faces
        return faces
