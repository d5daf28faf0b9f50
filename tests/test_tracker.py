"""Tracks of faces become one event per appearance: recognized once frames agree, unknown for a stranger."""
from __future__ import annotations

import numpy as np
import pytest

from edge.daemon.capture import Frame
from edge.config import Config, EventsConfig
from edge.commands.demo import Recogniser
from edge.face import Face
from edge.recognition.matcher import Match, Matcher, decision_threshold
from edge.daemon.pipeline import Pipeline
from edge.daemon.presence import PresenceTracker
from edge.daemon.sinks import MemorySink
from edge.daemon.tracker import RECHECK_EVERY, FaceTracker, Observation
from daemon_support import STRANGER, small_gallery, val_photo

MODELS = {"detector": "mtcnn-int8", "embedder": "test"}
ANN = Match(True, "p-ann", "Ann", 0.8, 0.75)
BOB = Match(True, "p-bob", "Bob", 0.8, 0.75)
NOBODY = Match(False, "p-ann", "Ann", 0.2, 0.2)


def face(x: float, y: float = 50.0, size: float = 80.0) -> Face:
    return Face((x, y, x + size, y + size), 0.99, np.zeros((5, 2), np.float32))


def run(tracker: FaceTracker, frames: list[list[Observation]], start: float = 0.0, step: float = 0.1):
    events = []
    for i, observations in enumerate(frames):
        events += [event for event, _ in tracker.update(observations, start + i * step)]
    return events


@pytest.fixture
def tracker() -> FaceTracker:
    return FaceTracker(EventsConfig(), "dev", "Dev", "door", MODELS)


def test_a_known_face_gives_one_recognized_event_however_long_it_stays(tracker):
    events = run(tracker, [[Observation(face(100 + i), ANN)] for i in range(40)])
    assert [(e.kind, e.name, e.frames) for e in events] == [("recognized", "Ann", 3)]
    event = events[0]
    assert event.person_id == "p-ann" and event.score == pytest.approx(0.75) and event.track_id == 1
    assert event.box == (102, 50, 182, 130) and event.models == MODELS and event.timestamp == pytest.approx(0.2)


def test_frames_must_agree_within_the_window(tracker):
    alternating = [[Observation(face(100), m)] for m in (ANN, BOB, NOBODY, BOB, ANN, NOBODY, NOBODY, NOBODY)]
    assert run(tracker, alternating) == []
    assert [e.name for e in run(tracker, [[Observation(face(100), ANN)]] * 3, start=1.0)] == ["Ann"]


def test_frames_rejected_by_quality_do_not_count(tracker):
    frames = [[Observation(face(100), ANN if i % 3 == 0 else None)] for i in range(8)]
    events = run(tracker, frames)
    assert [e.frames for e in events] == [3] and events[0].timestamp == pytest.approx(0.6)


def test_the_same_person_coming_back_after_the_timeout_is_a_new_appearance(tracker):
    first = run(tracker, [[Observation(face(100), ANN)]] * 5)
    second = run(tracker, [[Observation(face(100), ANN)]] * 5, start=0.4 + EventsConfig().track_timeout_s + 0.1)
    assert len(first) == len(second) == 1 and first[0].track_id != second[0].track_id


def test_a_stranger_gives_one_unknown_event_after_enough_frames(tracker):
    events = run(tracker, [[Observation(face(100), NOBODY)] for _ in range(30)])
    assert [(e.kind, e.person_id, e.name, e.frames) for e in events] == [("unknown", None, None, 8)]
    assert events[0].score == pytest.approx(0.2) and events[0].timestamp == pytest.approx(0.7)


def test_two_faces_are_two_tracks(tracker):
    frames = [[Observation(face(400 - 2 * i), NOBODY), Observation(face(100 + 2 * i), BOB)] for i in range(10)]
    events = run(tracker, frames)
    assert sorted((e.kind, e.name) for e in events) == [("recognized", "Bob"), ("unknown", None)]
    assert len({e.track_id for e in events}) == 2 and len(tracker.tracks) == 2


def test_somebody_else_stepping_into_the_place_is_a_new_appearance(tracker):
    events = run(tracker, [[Observation(face(100), ANN)]] * 6 + [[Observation(face(100), BOB)]] * 6)
    assert [e.name for e in events] == ["Ann", "Bob"] and events[0].track_id != events[1].track_id


def test_presence_is_reported_once_and_away_after_the_quiet_time():
    presence = PresenceTracker(away_after_s=10, device_id="dev", device="Dev")
    assert presence.seen("p-ann", "Ann", 0).present
    assert presence.seen("p-ann", "Ann", 5) is None
    assert presence.expire(14.9) == []
    [away] = presence.expire(15.0)
    assert (away.person_id, away.present) == ("p-ann", False) and presence.present == []


def test_real_faces_through_the_pipeline_one_recognized_and_one_unknown(celebrities, tmp_path):
    recogniser = Recogniser()
    gallery = small_gallery(celebrities, tmp_path)
    matcher = Matcher(gallery, recogniser.encoder.identity, decision_threshold(recogniser.spec, gallery))
    sink = MemorySink()
    pipeline = Pipeline(Config(), recogniser.detector, recogniser.encoder, matcher, sink, MODELS)
    canvas = np.full((480, 640, 3), 90, np.uint8)
    known, switched, stranger = canvas.copy(), canvas.copy(), canvas.copy()
    known[100:400, 100:300] = val_photo(celebrities, "ben_afflek")[:300, :200]
    switched[100:400, 100:300] = val_photo(celebrities, "elton_john")[:300, :200]  # his face overlaps Ben's: same track
    stranger[100:300, 380:580] = val_photo(celebrities, STRANGER)[:200, :200]
    scenes = [known] * 10 + [switched] * 16 + [canvas] * 2 + [stranger] * 12
    for number, image in enumerate(scenes, 1):
        pipeline.process(Frame(image, number, 1000.0 + number * 0.1))
    events = sink.events
    assert [(e.kind, e.name) for e in events] == [("recognized", "Ben Afflek"), ("recognized", "Elton John"),
                                                   ("unknown", None)]
    assert events[0].score >= 0.5 and events[1].score >= 0.5 > events[2].score
    assert events[0].track_id != events[1].track_id
    assert [(c.name, c.present) for c in sink.presence] == [("Ben Afflek", True), ("Elton John", True)]
    stats = pipeline.stats
    assert stats.frames_processed == len(scenes) and stats.events == {"recognized": 2, "unknown": 1}
    # decided faces are only rechecked: about 3 + 3 + 8 decisions' worth of embeddings for 38 faces
    assert stats.faces == 38 and stats.faces_embedded <= 20


def matched_only_when_wanted(tracker: FaceTracker, truths: list[Match | None], step: float = 0.1):
    """One face at a fixed place whose true match is ``truths[i]`` on frame i (None: no face on that frame),
    matched (as the pipeline does) only when its track wants a match; the events and the number of matches made."""
    events, made = [], 0
    for i, truth in enumerate(truths):
        tracks = tracker.assign([face(100)] if truth is not None else [], i * step)
        match = truth if tracks and tracks[0].wants_match() else None
        made += match is not None
        events += [event for event, _ in tracker.observe(tracks, [match] * len(tracks), i * step)]
    return events, made


def test_a_decided_track_is_rechecked_only_every_few_frames(tracker):
    events, made = matched_only_when_wanted(tracker, [ANN] * (3 + 5 * RECHECK_EVERY))
    assert [e.name for e in events] == ["Ann"]
    assert made == 3 + 5  # 3 to decide, then one every RECHECK_EVERY frames


def test_somebody_else_stepping_in_is_noticed_at_the_next_recheck_and_then_matched_every_frame(tracker):
    events, made = matched_only_when_wanted(tracker, [ANN] * 3 + [BOB] * (2 * RECHECK_EVERY))
    assert [e.name for e in events] == ["Ann", "Bob"] and events[0].track_id != events[1].track_id
    # Bob is first matched at the recheck (frame 2 + RECHECK_EVERY), then every frame until 3 agree
    assert events[1].timestamp == pytest.approx((2 + RECHECK_EVERY + 2) * 0.1)
    assert made == 3 + 3  # Ann's 3 and Bob's 3; the clip ends before the next recheck


def test_a_stranger_is_rechecked_and_recognized_when_a_known_person_takes_the_place(tracker):
    events, _ = matched_only_when_wanted(tracker, [NOBODY] * 8 + [ANN] * (2 * RECHECK_EVERY))
    assert [(e.kind, e.name) for e in events] == [("unknown", None), ("recognized", "Ann")]


def test_a_face_decided_unknown_but_close_to_a_person_is_matched_every_frame_and_recognized_at_once(tracker):
    close = Match(False, "p-ann", "Ann", 0.45, 0.45)  # below the threshold, but near: Ann far from the camera
    events, _ = matched_only_when_wanted(tracker, [close] * 8 + [ANN] * 3)
    assert [(e.kind, e.name) for e in events] == [("unknown", None), ("recognized", "Ann")]
    assert events[1].timestamp == pytest.approx(10 * 0.1)  # the third of Ann's frames, no wait for a recheck


def test_a_face_coming_back_after_frames_without_it_is_matched_at_once(tracker):
    events, _ = matched_only_when_wanted(tracker, [ANN] * 5 + [None] * 3 + [BOB] * 3)
    assert [e.name for e in events] == ["Ann", "Bob"]
    assert events[1].timestamp == pytest.approx(10 * 0.1)  # Bob's third frame: no wait for a recheck
    [track] = tracker.tracks
    assert track.id == events[1].track_id and track.first_seen == pytest.approx(8 * 0.1)  # Bob's first frame


def test_a_recognition_carries_the_mean_liveness_of_its_agreeing_frames():
    tracker = FaceTracker(EventsConfig(), "dev", "Dev", "door", MODELS, live_threshold=0.7)
    [live] = run(tracker, [[Observation(face(100), ANN, p)] for p in (0.9, 0.6, 0.9)])
    assert (live.liveness.score, live.liveness.live, live.liveness.frames) == (pytest.approx(0.8), True, 3)
    [photo] = run(tracker, [[Observation(face(100), BOB, p)] for p in (0.2, 0.3, 0.95)], start=10.0)
    assert (photo.liveness.score, photo.liveness.live) == (pytest.approx(0.4833, abs=1e-4), False)
    [stranger] = run(tracker, [[Observation(face(100), NOBODY, None)] for _ in range(8)], start=20.0)
    assert stranger.kind == "unknown" and stranger.liveness is None, "unknown faces are not checked"
    unchecked = FaceTracker(EventsConfig(), "dev", "Dev", "door", MODELS)  # liveness off
    assert run(unchecked, [[Observation(face(100), ANN, 0.9)]] * 3)[0].liveness is None
