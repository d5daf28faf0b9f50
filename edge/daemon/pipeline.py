"""The worker: newest frame -> motion gate -> faces -> tracks -> quality gate -> embeddings -> matches -> events.

The motion gate (``motion.enabled``, :mod:`edge.vision.gated_detection`) runs the detector only when
something moved, while faces are tracked, and every ``motion.keepalive_s``: a still, empty scene costs
a motion measure a frame.

Faces are given their tracks first, and only the faces whose tracks want a match
(:meth:`edge.daemon.tracker.Track.wants_match`: undecided, due for a re-check, or in doubt) are
aligned, checked and embedded; a decided face is otherwise only followed.

Runs on its own thread fed by :class:`edge.daemon.capture.CaptureThread`. Models are built once by
the daemon and handed in; the matcher can be swapped while running (gallery reload). The thread
is supervised (edge/supervision.py): a frame whose processing fails is logged (once for a run of
the same error), counted, skipped, and the next frame tried after a short backoff; failing frames
are not "processed", so a pipeline that fails on every frame stops the watchdog pings. An error
that escapes the loop itself ends the thread and the daemon (exit status 1).
"""
from __future__ import annotations

import base64
import logging
import threading
import time
from dataclasses import replace

import cv2
import numpy as np

from ..config import Config, MotionConfig
from ..events import Event, EventSink
from ..face import Face
from ..recognition.matcher import Match, Matcher
from ..supervision import Health, Retry, start_thread
from ..vision.face_encoder import FaceEncoder
from ..vision.gated_detection import FaceFinder, GatedDetector, GateSettings
from ..vision.liveness import LivenessChecker
from ..vision.motion import MotionDetector, MotionSettings
from ..vision.quality import assess, rejection, too_small
from .capture import CaptureThread, Frame
from .presence import PresenceTracker
from .status import PipelineStats
from .tracker import FaceTracker

log = logging.getLogger(__name__)
SNAPSHOT_MARGIN = 0.25  # snapshot box grown by this fraction of the face size on each side
FRAME_RETRY_S = 0.1  # after a frame failed, the next is taken after 0.1, 0.2, 0.4 ... s
FRAME_RETRY_MAX_S = 5.0


def motion_gate(finder: FaceFinder, motion: MotionConfig) -> GatedDetector:
    """``finder`` behind the motion gate ``motion`` configures."""
    return GatedDetector(finder, MotionDetector(MotionSettings(
        thumbnail_width=motion.thumbnail_width, sensitivity=motion.sensitivity, min_noise=motion.min_noise,
        min_area=motion.min_area, learning_rate=motion.learning_rate,
        moving_learning_rate=motion.moving_learning_rate, relearn_area=motion.relearn_area)),
        GateSettings(keepalive_s=motion.keepalive_s, region=motion.region, region_margin=motion.region_margin))


def face_snapshot(image: np.ndarray, box: tuple[int, int, int, int]) -> str:
    """JPEG (base64) of the face at ``box`` in a BGR frame, with a margin around it."""
    x1, y1, x2, y2 = box
    grow_x, grow_y = (x2 - x1) * SNAPSHOT_MARGIN, (y2 - y1) * SNAPSHOT_MARGIN
    height, width = image.shape[:2]
    left, top = max(0, int(x1 - grow_x)), max(0, int(y1 - grow_y))
    right, bottom = min(width, int(x2 + grow_x)), min(height, int(y2 + grow_y))
    ok, jpeg = cv2.imencode(".jpg", image[top:bottom, left:right], [cv2.IMWRITE_JPEG_QUALITY, 85])
    return base64.b64encode(jpeg.tobytes()).decode("ascii") if ok else ""


class Pipeline:
    """Processes frames and hands events and presence changes to the sink."""

    def __init__(self, config: Config, detector: FaceFinder, encoder: FaceEncoder, matcher: Matcher,
                 sink: EventSink, models: dict[str, str], stats: PipelineStats | None = None,
                 liveness: LivenessChecker | None = None, health: Health | None = None) -> None:
        self.config = config
        self.detector = detector
        self.gate = motion_gate(detector, config.motion) if config.motion.enabled else None
        self.encoder = encoder
        self.matcher = matcher
        self.liveness = liveness
        self.sink = sink
        self.stats = stats or PipelineStats()
        self.health = health or Health()
        self.tracker = FaceTracker(config.events, config.device_id, config.device.name, config.camera.name, models,
                                   config.liveness.threshold if liveness is not None else None)
        self.presence = PresenceTracker(config.events.away_after_s, config.device_id, config.device.name)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rgb: np.ndarray | None = None  # conversion buffer of the current frame size
        self.error: BaseException | None = None

    def set_matcher(self, matcher: Matcher) -> None:
        """Match against a new gallery from the next frame on."""
        self.matcher = matcher

    def process(self, frame: Frame) -> list[Event]:
        """One frame through every stage; the events it decided (already handed to the sink)."""
        timings: dict[str, float] = {}
        started = time.perf_counter()
        faces = self._find_faces(frame, timings)
        mark = time.perf_counter()
        tracks = self.tracker.assign(faces, frame.timestamp)
        wanted = [i for i, track in enumerate(tracks) if track.wants_match()]
        matches: list[Match | None] = [None] * len(faces)
        live: list[float | None] = [None] * len(faces)
        rejected = embedded = 0
        if wanted:
            usable, rejected = self._usable_crops(frame.image, [faces[i] for i in wanted])
            mark = _lap(timings, "quality", mark)
            if usable:
                embeddings = self._embed([crop for _, crop in usable])
                embedded = len(usable)
                mark = _lap(timings, "embed", mark)
                for (index, _), match in zip(usable, self.matcher.match(embeddings)):
                    matches[wanted[index]] = match
                mark = _lap(timings, "match", mark)
                known = [i for i, match in enumerate(matches) if match is not None and match.known]
                if self.liveness is not None and known:  # only a face about to be named can open a door
                    for index, score in zip(known, self.liveness.score(frame.image, [faces[i] for i in known])):
                        live[index] = float(score)
                    mark = _lap(timings, "liveness", mark)
        decided = self.tracker.observe(tracks, matches, frame.timestamp, live)
        events = []
        for event, _track in decided:
            if self.config.events.snapshot:
                event = replace(event, snapshot_jpeg_base64=face_snapshot(frame.image, event.box))
            self.sink.publish_event(event)
            self.stats.event(event.kind)
            events.append(event)
        self._update_presence(frame.timestamp)
        _lap(timings, "track", mark)
        timings["total"] = (time.perf_counter() - started) * 1000
        self.stats.frame_done(timings, len(faces), rejected, embedded)
        return events

    def _find_faces(self, frame: Frame, timings: dict[str, float]) -> list[Face]:
        """The frame's faces, through the motion gate when there is one; the motion measure and the
        detector's time go to ``timings`` (``detect`` only on frames the detector ran on)."""
        started = time.perf_counter()
        if self.gate is None:
            faces = self.detector.detect(frame.image)
            _lap(timings, "detect", started)
            self.stats.searched("ungated")
            return faces
        faces = self.gate.detect(frame.image, frame.timestamp)
        timings["motion"] = self.gate.motion_ms
        if self.gate.reason != "skipped":
            timings["detect"] = (time.perf_counter() - started) * 1000 - self.gate.motion_ms
        self.stats.searched(self.gate.reason)
        return faces

    def _usable_crops(self, bgr: np.ndarray, faces: list[Face]) -> tuple[list[tuple[int, np.ndarray]], int]:
        """(index into ``faces``, aligned RGB crop) of the faces that pass the quality gate, and how many did
        not. Faces too small for it are rejected before anything is aligned."""
        quality = self.config.quality
        tall = [i for i, face in enumerate(faces) if too_small(face, quality) is None]
        if not tall:
            return [], len(faces)
        crops = self.encoder.align(self._to_rgb(bgr), [faces[i] for i in tall])
        usable = [(i, crop) for i, crop in zip(tall, crops) if rejection(assess(faces[i], crop), quality) is None]
        return usable, len(faces) - len(usable)

    def _embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """Embeddings of aligned crops, one face at a time: batching gains nothing with XNNPACK (the time
        per face is the same at batch 1 to 4) and one input shape keeps one interpreter (each new batch
        size would build another, ~0.1 s and memory)."""
        return np.concatenate([self.encoder.embed_crops(crop[None]) for crop in crops])

    def _to_rgb(self, bgr: np.ndarray) -> np.ndarray:
        """The frame in RGB, converted into a buffer reused while the frame size stays the same."""
        if self._rgb is None or self._rgb.shape != bgr.shape:
            self._rgb = np.empty_like(bgr)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=self._rgb)

    def _update_presence(self, now: float) -> None:
        for track in self.tracker.tracks:
            person = track.person
            if person is not None and track.last_seen == now:
                change = self.presence.seen(person[0], person[1], now)
                if change is not None:
                    self.sink.publish_presence(change)
        for change in self.presence.expire(now):
            self.sink.publish_presence(change)

    def start(self, capture: CaptureThread) -> None:
        """Process the capture's newest frames on a worker thread until :meth:`stop` or the source ends."""
        self._thread = start_thread("pipeline", lambda: self._run(capture), self.health, log)

    def stop(self, timeout: float = 3.0) -> None:
        """Finish the frame in hand and stop."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        """Whether the worker thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self, capture: CaptureThread) -> None:
        failures = Retry("pipeline", self.health, log, FRAME_RETRY_S, FRAME_RETRY_MAX_S)
        try:
            while not self._stop.is_set():
                frame = capture.latest(timeout=0.5)
                if frame is None:
                    if capture.finished:
                        break
                    self._update_presence_idle()
                    continue
                try:
                    self.process(frame)
                except Exception as error:  # this frame is skipped; the next one is tried
                    self.stats.frame_failed()
                    self._stop.wait(failures.failed(error, f"frame {frame.number}"))
                else:
                    failures.succeeded()
        except BaseException as error:  # the daemon sees the thread end and exits non-zero
            self.error = error
            raise

    def _update_presence_idle(self) -> None:
        for change in self.presence.expire(time.time()):
            self.sink.publish_presence(change)


def _lap(timings: dict[str, float], stage: str, since: float) -> float:
    now = time.perf_counter()
    timings[stage] = (now - since) * 1000
    return now
