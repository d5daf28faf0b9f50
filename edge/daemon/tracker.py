"""Faces followed across frames, and one decision per appearance: recognized or unknown.

Each frame's faces are associated with the open tracks by box overlap (IoU, greedy, best
first); a face that overlaps none starts a new track, and a track unseen for
``events.track_timeout_s`` is closed (the same person coming back is a new appearance).
A track remembers the matches of its last ``events.window`` usable frames (faces that
passed the quality gate). It yields

- a "recognized" event when ``events.needed`` of those frames name the same person, or
- an "unknown" event after ``events.unknown_after_frames`` usable frames without a match
  (and none in the window),

and then nothing more: one event per appearance, not one per frame. Only when a decided
track's window comes to name a different person (somebody stepped into the place of the
face before within the timeout) does it become a new appearance with a new track id.

Faces are associated with tracks (:meth:`FaceTracker.assign`) before anything is embedded, so
that the pipeline matches only the faces that can still change a decision
(:meth:`Track.wants_match`): every face of an undecided track, but a decided track's face only
once in ``RECHECK_EVERY`` frames, and again every frame while its latest match names somebody
other than the decision with a score near or above the threshold (somebody stepped in, or a
face decided unknown while far or turned is becoming recognizable).
"""
from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..config import EventsConfig
from ..events import Event, Liveness
from ..face import Face
from ..recognition.matcher import Match
from ..vision.nms import iou_matrix

MIN_IOU = 0.3  # a face continues a track when their boxes overlap at least this much
RECHECK_EVERY = 10  # a decided track's face is matched again after this many frames without a match
DOUBT_SCORE = 0.4  # ... and every frame while its latest match names somebody else at this score (0.5: known)


@dataclass(frozen=True)
class Observation:
    """One face in one frame, and its match when the face was good enough to decide on."""

    face: Face
    match: Match | None  # None: tracked, but rejected by the quality gate
    liveness: float | None = None  # p(live) of the face, when it was checked


@dataclass
class Track:
    """One appearance of one face."""

    id: int
    box: tuple[float, float, float, float]
    first_seen: float  # timestamp of the appearance's first frame (after a switch: see FaceTracker._switched)
    last_seen: float
    seen_since: float = 0.0  # timestamp of the first frame of the current unbroken run of frames with this face
    refound: bool = False  # this frame's face came back after frames without it: maybe somebody else
    recent: deque = field(default_factory=deque)  # (Match, box, p(live) or None) of the last `window` usable frames
    unmatched: int = 0  # usable frames without a match
    since_match: int = 0  # frames seen since the last one with a match
    decision: Event | None = None

    def wants_match(self) -> bool:
        """Whether this frame's face should be matched: always while undecided; once decided, when the
        face comes back after frames without it, every ``RECHECK_EVERY`` frames, and every frame while
        the latest match is in doubt: it names somebody
        other than the decision with a score of at least ``DOUBT_SCORE`` (a known person, or a face
        decided unknown that comes close to someone as it turns or nears the camera)."""
        if self.decision is None or self.refound or self.since_match + 1 >= RECHECK_EVERY:
            return True
        latest = self.recent[-1][0] if self.recent else None
        return latest is not None and latest.person_id != self.decision.person_id and latest.score >= DOUBT_SCORE

    @property
    def person(self) -> tuple[str, str] | None:
        """(person id, name) once the track was recognized."""
        if self.decision is not None and self.decision.kind == "recognized":
            return self.decision.person_id, self.decision.name
        return None


class FaceTracker:
    """Turns per-frame observations into at most one Event per track."""

    def __init__(self, settings: EventsConfig, device_id: str, device: str, camera: str,
                 models: dict[str, str], live_threshold: float | None = None) -> None:
        self.settings = settings
        self.live_threshold = live_threshold  # None: liveness off, events carry none
        self.device_id = device_id
        self.device = device
        self.camera = camera
        self.models = dict(models)
        self.tracks: list[Track] = []
        self._next_id = 1
        self._last_frame: float | None = None  # timestamp of the previous frame

    def update(self, observations: list[Observation], timestamp: float) -> list[tuple[Event, Track]]:
        """Associate this frame's faces with tracks; the events decided on this frame, each with its track."""
        tracks = self.assign([o.face for o in observations], timestamp)
        return self.observe(tracks, [o.match for o in observations], timestamp, [o.liveness for o in observations])

    def assign(self, faces: Sequence[Face], timestamp: float) -> list[Track]:
        """Close tracks unseen for the timeout and give each face of this frame its track (a new one
        when it overlaps none); the tracks' boxes and last_seen are updated."""
        self.tracks = [t for t in self.tracks if timestamp - t.last_seen <= self.settings.track_timeout_s]
        assigned = self._associate(faces, timestamp)
        for face, track in zip(faces, assigned):
            track.refound = track.last_seen != self._last_frame
            if track.refound:
                track.seen_since = timestamp
            track.box = face.box
            track.last_seen = timestamp
        self._last_frame = timestamp
        return assigned

    def observe(self, tracks: list[Track], matches: Sequence[Match | None], timestamp: float,
                liveness: Sequence[float | None] | None = None) -> list[tuple[Event, Track]]:
        """Record each track's match of this frame (None: not matched, or rejected by the quality gate)
        and its face's p(live) (None: not checked); the events decided on this frame, each with its track."""
        decided = []
        for track, match, live in zip(tracks, matches, liveness or [None] * len(tracks)):
            if match is None:
                track.since_match += 1
                continue
            track.since_match = 0
            track.recent.append((match, track.box, live))
            while len(track.recent) > self.settings.window:
                track.recent.popleft()
            if not match.known:
                track.unmatched += 1
            event = self._decide(track, timestamp) if track.decision is None else self._switched(track, timestamp)
            if event is not None:
                track.decision = event
                decided.append((event, track))
        return decided

    def _associate(self, faces: Sequence[Face], timestamp: float) -> list[Track]:
        boxes = np.array([face.box for face in faces], np.float64).reshape(-1, 4)
        overlaps = iou_matrix(boxes, np.array([t.box for t in self.tracks], np.float64).reshape(-1, 4))
        assigned: list[Track | None] = [None] * len(faces)
        taken: set[int] = set()
        for flat in np.argsort(-overlaps, axis=None):
            face_index, track_index = np.unravel_index(flat, overlaps.shape)
            if overlaps[face_index, track_index] < MIN_IOU:
                break
            if assigned[face_index] is None and track_index not in taken:
                assigned[face_index] = self.tracks[track_index]
                taken.add(int(track_index))
        for index, track in enumerate(assigned):
            if track is None:
                track = Track(id=self._next_id, box=faces[index].box, first_seen=timestamp, last_seen=timestamp)
                self._next_id += 1
                self.tracks.append(track)
                assigned[index] = track
        return assigned  # type: ignore[return-value]

    def _votes(self, track: Track) -> dict[str, list[tuple[Match, tuple, float | None]]]:
        votes: dict[str, list[tuple[Match, tuple, float | None]]] = {}
        for entry in track.recent:
            if entry[0].known:
                votes.setdefault(entry[0].person_id, []).append(entry)
        return votes

    def _recognized(self, track: Track, votes: dict[str, list[tuple[Match, tuple, float | None]]],
                    timestamp: float) -> Event | None:
        if not votes:
            return None
        person_id, agreeing = max(votes.items(), key=lambda item: len(item[1]))
        if len(agreeing) < self.settings.needed:
            return None
        return self._event("recognized", track, agreeing, len(agreeing), timestamp, person_id, agreeing[-1][0].name)

    def _decide(self, track: Track, timestamp: float) -> Event | None:
        votes = self._votes(track)
        event = self._recognized(track, votes, timestamp)
        if event is None and not votes and track.unmatched >= self.settings.unknown_after_frames:
            event = self._event("unknown", track, list(track.recent), track.unmatched, timestamp, None, None)
        return event

    def _switched(self, track: Track, timestamp: float) -> Event | None:
        """A decided track whose box now shows somebody else, recognized (one person left and
        another stepped into their place within the timeout): a new appearance, with a new id.
        Its first_seen becomes the start of the face's current unbroken run of frames (the newcomer
        came after a gap, or, without a gap, no later than that)."""
        votes = self._votes(track)
        decided_person = track.decision.person_id if track.decision is not None else None
        candidate = max(votes.items(), key=lambda item: len(item[1]), default=None)
        if candidate is None or candidate[0] == decided_person or len(candidate[1]) < self.settings.needed:
            return None
        track.id, self._next_id = self._next_id, self._next_id + 1
        track.unmatched = 0
        track.first_seen = track.seen_since
        return self._recognized(track, votes, timestamp)

    def _event(self, kind: str, track: Track, agreeing: list[tuple[Match, tuple, float | None]], frames: int,
               timestamp: float, person_id: str | None, name: str | None) -> Event:
        box = tuple(int(round(v)) for v in agreeing[-1][1])
        score = float(np.mean([match.score for match, _, _ in agreeing]))
        return Event(kind=kind, device_id=self.device_id, device=self.device, camera=self.camera, person_id=person_id,
                     name=name, score=round(score, 4), frames=frames, box=box, models=self.models, track_id=track.id,
                     timestamp=timestamp, liveness=self._liveness(agreeing) if kind == "recognized" else None)

    def _liveness(self, agreeing: list[tuple[Match, tuple, float | None]]) -> Liveness | None:
        """The mean p(live) of the agreeing frames that were checked, and the decision at the threshold."""
        scores = [live for _, _, live in agreeing if live is not None]
        if self.live_threshold is None or not scores:
            return None
        score = round(float(np.mean(scores)), 4)
        return Liveness(score=score, live=score >= self.live_threshold, frames=len(scores))
