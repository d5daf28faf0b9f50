"""The motion gate: an empty, still scene is not searched, a person walking in is found as early as
without the gate, and a region search finds what the whole frame's search finds.

The door scene (scripts/door_scene.py) is opencv-doc's building.jpg with sensor noise, a slow light
drift and an exposure step, then a sample photo from PyPI walking in; real detector, real frames.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from door_scene import BACKGROUND, FAR, FPS, NEAR, background, noisy, walk_in  # noqa: E402
from edge.vision.detector import DetectorSettings, MTCNNDetector  # noqa: E402
from edge.vision.gated_detection import GatedDetector, GateSettings, motion_near, search_window  # noqa: E402
from edge.vision.motion import MotionDetector, MotionSettings  # noqa: E402
from edge.vision.nms import iou_matrix  # noqa: E402
from edge.vision.tracked_detection import TrackingDetector  # noqa: E402

from daemon_support import val_photo  # noqa: E402


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    if not BACKGROUND.exists():
        pytest.skip(f"{BACKGROUND} not found (apt install opencv-doc; CI installs it)")
    return background()[0]


@pytest.fixture(scope="module")
def person(celebrities) -> np.ndarray:
    return val_photo(celebrities, "ben_afflek")


def finder() -> TrackingDetector:
    """The daemon's default face finder."""
    return TrackingDetector(MTCNNDetector(DetectorSettings(min_face_size=40)))


def test_noise_light_drift_and_an_exposure_step_are_no_motion(scene, person):
    clip = walk_in(scene, person)
    motion = MotionDetector()
    moved = [i for i, frame in enumerate(clip.frames[:clip.enters_at]) if motion.update(frame).moved]
    assert moved == [0]  # the first frame is learnt (and searched); the exposure step at frame 36 is not motion
    assert motion.update(clip.frames[clip.enters_at]).moved  # the first slice of the person is


def test_without_the_exposure_correction_the_step_would_be_motion(scene, person):
    """The clip's exposure step matters: a background that only follows the frames sees it as motion."""
    clip = walk_in(scene, person)
    motion = MotionDetector()
    for frame in clip.frames[:clip.exposure_step_at]:
        motion.update(frame)
    motion._exposure_changed = lambda: False  # the check under test, switched off
    changed = motion.update(clip.frames[clip.exposure_step_at])
    assert changed.moved and changed.area > 0.05


@pytest.mark.parametrize("height", [NEAR, FAR])
def test_a_person_walking_in_is_found_no_later_than_without_the_gate_plus_one_frame(scene, person, height):
    clip = walk_in(scene, person, height)
    plain, gated = finder(), GatedDetector(finder(), MotionDetector())
    first_plain = first_gated = None
    reasons, counts = [], []
    for index, frame in enumerate(clip.frames):
        found_plain, found_gated = plain.detect(frame), gated.detect(frame, index / FPS)
        reasons.append(gated.reason)
        counts.append((len(found_plain), len(found_gated)))
        if found_plain and first_plain is None:
            first_plain = index
        if found_gated and first_gated is None:
            first_gated = index
    assert first_plain is not None and first_plain >= clip.enters_at
    assert first_gated is not None and first_gated <= first_plain + 1
    empty = reasons[:clip.enters_at]
    keepalives = math.ceil(clip.enters_at / FPS / GateSettings().keepalive_s)
    assert empty.count("skipped") >= clip.enters_at - 1 - keepalives  # searched: the first frame and keep-alives
    assert set(reasons[clip.enters_at:first_gated + 1]) <= {"motion", "region"}
    assert set(reasons[first_gated + 1:]) == {"tracking"}
    assert counts[first_gated + 1:] == [(1, 1)] * (len(counts) - first_gated - 1)
    if height == FAR:  # the far person's motion fits a window: only that window is searched
        assert "region" in reasons[clip.enters_at:first_gated + 1]


@pytest.mark.parametrize("tracking", [True, False])
def test_a_still_scene_is_searched_only_at_the_keepalive(scene, tracking):
    rng = np.random.default_rng(1)
    gated = GatedDetector(finder() if tracking else MTCNNDetector(DetectorSettings(min_face_size=40)), MotionDetector())
    searched = [index for index in range(int(4.5 * FPS))
                if gated.detect(noisy(scene, rng), index / FPS) is not None and gated.reason != "skipped"]
    assert searched == [0, 60, 120]  # the first frame, then every keepalive_s (2 s)


def test_a_person_who_appears_without_motion_is_found_at_a_keepalive(scene, person):
    """A face that fades in over 6 s changes too little from frame to frame to be motion (the background
    follows it): the keep-alive search finds it all the same."""
    rng = np.random.default_rng(2)
    there = walk_in(scene, person).frames[-1]
    gated = GatedDetector(finder(), MotionDetector())
    frames = int(6 * FPS)
    for index in range(frames):
        alpha = index / frames
        frame = noisy(cv2.addWeighted(scene, 1 - alpha, there, alpha, 0), rng)
        faces = gated.detect(frame, index / FPS)
        assert gated.reason in ("skipped", "keepalive") or index == 0, (index, gated.reason)
        if faces:
            break
    assert faces and gated.reason == "keepalive" and index < frames - 1


def test_a_region_search_finds_the_face_the_whole_frame_search_finds(scene, person):
    frame = walk_in(scene, person, FAR).frames[-1]
    detector = MTCNNDetector(DetectorSettings(min_face_size=40))
    whole = detector.detect(frame)
    assert len(whole) == 1
    x1, y1, x2, y2 = (int(v) for v in whole[0].box)
    window = search_window((x1, y1, x2, y2), 0.5, frame.shape)
    assert window is not None
    inside = detector.detect(frame, window)
    assert len(inside) == 1
    assert iou_matrix(np.array([whole[0].box]), np.array([inside[0].box]))[0, 0] > 0.9
    assert window[0] <= inside[0].box[0] and inside[0].box[2] <= window[2]  # frame coordinates, not the window's
    elsewhere = (0, 0, frame.shape[1] // 2, frame.shape[0] // 2)  # top left: no face there
    assert detector.detect(frame, elsewhere) == []
    assert [f.box for f in detector.detect(frame)] == [f.box for f in whole]  # the buffer shared with regions


@pytest.mark.parametrize("box, expected", [
    ((300, 200, 340, 240), (160, 100, 480, 340)),  # centred on the box
    ((0, 0, 40, 40), (0, 0, 320, 240)),  # moved inside the frame
    ((600, 440, 640, 480), (320, 240, 640, 480)),
    ((100, 100, 300, 200), None),  # 200 wide + 2 x 100 margin does not fit 320
])
def test_the_search_window_is_half_the_frame_around_the_motion(box, expected):
    assert search_window(box, 0.5, (480, 640, 3)) == expected


def test_motion_away_from_what_the_finder_follows_calls_for_a_full_pass():
    """A near-miss followed at the left does not explain motion at the right: the finder is reset there."""
    followed = [(10.0, 10.0, 60.0, 60.0)]
    assert motion_near((40, 40, 120, 120), followed)
    assert not motion_near((400, 40, 480, 120), followed)
    assert not motion_near((400, 40, 480, 120), [])  # nothing followed: every search is a full pass
    assert motion_near(None, [])  # no motion (a keep-alive after skipped frames resets anyway)


@pytest.mark.parametrize("bad", [{"thumbnail_width": 8}, {"sensitivity": 0}, {"min_area": 0}, {"learning_rate": 2}])
def test_motion_settings_out_of_range_are_named(bad):
    with pytest.raises(ValueError, match=next(iter(bad)) if "sensitivity" not in bad else "sensitivity"):
        MotionSettings(**bad)


def test_the_gate_leaves_the_stage_clips_events_unchanged(shared_data, tmp_path):
    """On the stage clip the gate must not change a single event (frames in video time, both runs alike)."""
    from daemon_runs import enroll_stage_people
    from evaluate_motion_gate import play

    gallery = tmp_path / "stage.npz"
    enroll_stage_people(shared_data / "faces-small" / "stage-people", gallery, 2)
    video = shared_data / "videos" / "stage_640x360.mp4"
    plain, gated = play(video, gallery, False, 2), play(video, gallery, True, 2)
    assert plain.events and gated.events == plain.events
    assert [len(faces) for faces in gated.faces] == [len(faces) for faces in plain.faces]
