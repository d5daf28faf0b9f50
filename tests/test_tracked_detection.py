"""Tracking-assisted detection follows faces without the pyramid and still finds new ones."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.vision.detector import DetectorSettings, MTCNNDetector, to_rgb
from edge.vision.tracked_detection import TrackingDetector, TrackingSettings


@pytest.fixture(scope="module")
def portrait(celebrities) -> np.ndarray:
    photo = cv2.imread(str(min((celebrities / "val").glob("*/*.jpg"))))
    return cv2.resize(photo, (160, int(160 * photo.shape[0] / photo.shape[1])))


def scene(portrait: np.ndarray, x: int, second_at: int | None = None) -> np.ndarray:
    """A grey 640x480 frame with the portrait at ``x`` (and a second copy at ``second_at``)."""
    frame = np.full((480, 640, 3), 110, np.uint8)
    h, w = portrait.shape[:2]
    frame[60:60 + h, x:x + w] = portrait
    if second_at is not None:
        frame[60:60 + h, second_at:second_at + w] = portrait
    return frame


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h)


def test_follows_a_moving_face_mostly_without_the_pyramid(portrait):
    detector = MTCNNDetector(DetectorSettings(min_face_size=40))
    tracker = TrackingDetector(detector, TrackingSettings(full_every=10))
    for step in range(30):
        frame = scene(portrait, 20 + 6 * step)
        tracked = tracker.detect(frame)
        full = detector.detect(frame)
        assert len(tracked) == len(full) == 1
        assert iou(tracked[0].box, full[0].box) > 0.8
    assert tracker.full_runs == 3 and tracker.tracked_runs == 27


def test_a_new_face_is_found_by_the_next_full_run(portrait):
    tracker = TrackingDetector(MTCNNDetector(DetectorSettings(min_face_size=40)), TrackingSettings(full_every=5))
    counts = [len(tracker.detect(scene(portrait, 20, second_at=400 if step >= 2 else None))) for step in range(8)]
    assert counts[:2] == [1, 1]
    assert counts[5:] == [2, 2, 2]


def test_a_cut_to_another_scene_runs_the_full_pass_at_once(portrait):
    tracker = TrackingDetector(MTCNNDetector(DetectorSettings(min_face_size=40)), TrackingSettings(full_every=10))
    for _ in range(3):
        assert len(tracker.detect(scene(portrait, 20))) == 1
    cut = scene(portrait, 20, second_at=400)
    cut[cut == 110] = 230  # another background: the tracked face is still there, a new one beside it
    assert len(tracker.detect(cut)) == 2
    assert tracker.full_runs == 2


def test_a_lost_face_is_searched_for_in_the_same_frame(portrait):
    tracker = TrackingDetector(MTCNNDetector(DetectorSettings(min_face_size=40)), TrackingSettings(full_every=10))
    tracker.detect(scene(portrait, 20))
    jumped = tracker.detect(scene(portrait, 420))  # too far for the tracking pass
    assert len(jumped) == 1 and jumped[0].box[0] > 380
    assert tracker.full_runs == 2


def test_a_face_that_leaves_is_dropped_at_once(portrait):
    tracker = TrackingDetector(MTCNNDetector(DetectorSettings(min_face_size=40)))
    assert len(tracker.detect(scene(portrait, 20))) == 1
    assert tracker.detect(np.full((480, 640, 3), 110, np.uint8)) == []


def onet_crops_per_call(detector: MTCNNDetector, monkeypatch) -> list[int]:
    """Records how many boxes each O-Net call of ``detector`` is given."""
    calls: list[int] = []
    run_batched = detector._run_batched

    def counted(model, image, boxes, size, prepare=None):
        if model is detector._onet:
            calls.append(len(boxes))
        return run_batched(model, image, boxes, size, prepare)

    monkeypatch.setattr(detector, "_run_batched", counted)
    return calls


@pytest.mark.parametrize("staged, crops", [(True, [1]), (False, [4])])
def test_a_face_its_first_box_keeps_costs_one_onet_crop(portrait, monkeypatch, staged, crops):
    detector = MTCNNDetector(DetectorSettings(min_face_size=40))
    tracker = TrackingDetector(detector, TrackingSettings(staged=staged))
    assert len(tracker.detect(scene(portrait, 20))) == 1
    assert len(tracker._candidates) == 1
    calls = onet_crops_per_call(detector, monkeypatch)
    moved = tracker.detect(scene(portrait, 24))
    assert calls == crops  # growth has 4 factors; staged, the first box alone kept the face
    assert len(moved) == 1 and iou(moved[0].box, detector.detect(scene(portrait, 24))[0].box) > 0.8
    assert tracker.full_runs == 1


def test_a_face_its_first_box_misses_is_found_with_the_other_boxes(portrait, monkeypatch):
    detector = MTCNNDetector(DetectorSettings(min_face_size=40))
    frame = scene(portrait, 20)
    face = detector.detect(frame)[0]
    calls = onet_crops_per_call(detector, monkeypatch)
    # a third of the face's size around its centre shows a nose, not a face; the box at 1.0 shows the face
    assert detector.detect_near(to_rgb(frame), [face.box], growth=(0.3,), threshold=0.3) == []
    found = detector.detect_near(to_rgb(frame), [face.box], growth=(0.3, 1.0, 1.15), threshold=0.3, settle=0.3)
    assert calls == [1, 1, 2]
    assert len(found) == 1 and iou(found[0].box, face.box) > 0.8


@pytest.mark.parametrize("bad", [{"full_every": 0}, {"keep_threshold": 2.0}, {"growth": ()}, {"scene_change": 0}])
def test_tracking_settings_out_of_range_are_named(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        TrackingSettings(**bad)
