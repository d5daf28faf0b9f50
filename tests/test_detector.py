"""The MTCNN cascade finds real faces and survives bad frames."""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from edge.vision.detector import DetectorSettings, InvalidFrameError, MTCNNDetector, pyramid_scales


@pytest.fixture(scope="module")
def detector() -> MTCNNDetector:
    return MTCNNDetector(DetectorSettings(quantization="int8"))


@pytest.fixture(scope="module")
def val_photos(celebrities):
    return sorted((celebrities / "val").glob("*/*.jpg"))


def test_finds_a_face_with_landmarks_inside_its_box_in_every_portrait(detector, val_photos):
    assert len(val_photos) >= 20
    for photo in val_photos:
        frame = cv2.imread(str(photo))
        faces = detector.detect(frame)
        assert faces, photo.name
        best = max(faces, key=lambda f: f.width * f.height)
        x1, y1, x2, y2 = best.box
        assert best.score > 0.9
        assert np.all((best.landmarks[:, 0] > x1) & (best.landmarks[:, 0] < x2)), photo.name
        assert np.all((best.landmarks[:, 1] > y1) & (best.landmarks[:, 1] < y2)), photo.name
        left_eye, right_eye, nose, mouth_left, mouth_right = best.landmarks
        assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
        assert max(left_eye[1], right_eye[1]) < nose[1] < max(mouth_left[1], mouth_right[1]) + 1


def test_same_faces_for_bgr_gray_and_bgra(detector, val_photos):
    frame = cv2.imread(str(val_photos[0]))
    reference = detector.detect(frame)
    bgra = cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA)
    assert [f.box for f in detector.detect(bgra)] == [f.box for f in reference]
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    assert len(detector.detect(gray)) >= 1
    assert len(detector.detect(gray[:, :, None])) >= 1


def test_a_reused_detector_answers_each_frame_as_a_fresh_one(val_photos):
    """The detector keeps its normalised-frame buffer between frames; nothing of one frame may leak into the next."""
    frames = [cv2.imread(str(p)) for p in val_photos[:3]]
    frames.append(cv2.resize(frames[0], (frames[0].shape[1] // 2 * 2 + 40, frames[0].shape[0])))  # another size
    reused = MTCNNDetector(DetectorSettings(quantization="int8"))
    for frame in frames:
        again, fresh = reused.detect(frame), MTCNNDetector(DetectorSettings(quantization="int8")).detect(frame)
        assert [f.box for f in again] == [f.box for f in fresh]
        assert [f.score for f in again] == [f.score for f in fresh]


def test_no_face_in_flat_or_noise_frames(detector):
    assert detector.detect(np.full((480, 640, 3), 128, np.uint8)) == []
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    assert len(detector.detect(noise)) <= 1


@pytest.mark.parametrize("frame", [np.zeros((0, 0, 3), np.uint8), np.zeros((1, 1, 3), np.uint8),
                                   np.zeros((15, 400, 3), np.uint8)])
def test_frames_smaller_than_the_minimum_face_give_no_faces_at_once(detector, frame):
    started = time.perf_counter()
    assert detector.detect(frame) == []
    assert time.perf_counter() - started < 0.05


@pytest.mark.parametrize("frame, message", [
    (None, "numpy array"),
    (np.zeros((10, 10, 3), np.float32), "uint8"),
    (np.zeros((10, 10, 2), np.uint8), "shape"),
    (np.zeros((2, 10, 10, 3), np.uint8), "shape"),
])
def test_unreadable_frames_give_a_clear_error(detector, frame, message):
    with pytest.raises(InvalidFrameError, match=message):
        detector.detect(frame)


def test_huge_frame_finishes_with_a_coarser_minimum_face(val_photos):
    frame = cv2.resize(cv2.imread(str(val_photos[0])), (8000, 6000))
    faces = MTCNNDetector(DetectorSettings(min_face_size=400)).detect(frame)
    assert len(faces) >= 1


def test_pyramid_spans_minimum_face_to_frame():
    scales = pyramid_scales(480, 640, 40, 0.709)
    assert scales[0] == pytest.approx(12 / 40)
    assert 480 * scales[-1] >= 12 > 480 * scales[-1] * 0.709
    assert pyramid_scales(10, 10, 20, 0.709) == []


@pytest.mark.parametrize("bad", [dict(min_face_size=5), dict(scale_factor=1.0), dict(pnet_threshold=1.5),
                                 dict(quantization="fp16"), dict(num_threads=0)])
def test_settings_out_of_range_are_named(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        DetectorSettings(**bad)


@pytest.mark.parametrize("machine, expected", [
    ("x86_64", "float32"),  # XNNPACK's int8 cascade is about twice as slow here, with or without VNNI
    ("aarch64", "int8"),
    ("armv7l", "int8"),
])
def test_auto_quantization_follows_the_cpu(monkeypatch, machine, expected):
    from edge.vision import detector as module

    monkeypatch.setattr(module, "runtime_name", lambda: "ai-edge-litert")
    monkeypatch.setattr(module.platform, "machine", lambda: machine)
    assert module.resolve_quantization("auto") == expected
    assert module.resolve_quantization("int8") == "int8"


def test_auto_quantization_under_tflite_runtime_is_float(monkeypatch):
    from edge.vision import detector as module

    monkeypatch.setattr(module, "runtime_name", lambda: "tflite-runtime")
    assert module.resolve_quantization("auto") == "float32"
