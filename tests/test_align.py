"""Face preparation for the embedder: the landmark alignment puts the face on its template and
pads faces at the frame edge black; the tutorial crop stretches the box plus a margin that
scales with the face to the whole crop and clips at the frame edge; the square margin crop keeps
the box centred; the method is picked by name."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from edge.vision.align import (ALIGNERS, LANDMARK_STRETCH, align_faces, aligner, aligner_for, landmark_align,
                        landmark_template, landmark_transform, margin_crop, similarity_transform,
                        tutorial_crop)
from edge.vision.detector import DetectorSettings, MTCNNDetector
from edge.face import Face
from edge.runtime.model_files import ALIGNMENTS

SIZE = 160


def _face_from_crop_similarity(scale: float, angle_deg: float, centre: tuple[float, float]) -> Face:
    """A face whose landmarks are an exact similarity image of the (unstretched) template:
    ``scale`` frame pixels per crop pixel, rotated by ``angle_deg``, the crop centre at ``centre``."""
    template = landmark_template(SIZE)
    template[:, 0] = SIZE / 2 + (template[:, 0] - SIZE / 2) / LANDMARK_STRETCH
    a = math.radians(angle_deg)
    rotation = scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    points = (template - SIZE / 2) @ rotation.T + np.array(centre)
    side = scale * SIZE
    box = (centre[0] - side / 2, centre[1] - side / 2, centre[0] + side / 2, centre[1] + side / 2)
    return Face(box=box, score=1.0, landmarks=points.astype(np.float32))


def _spots(height: int, width: int, points: np.ndarray, sigma: float) -> np.ndarray:
    """Black RGB frame with a bright Gaussian spot at each point."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.zeros((height, width), np.float32)
    for x, y in points:
        image += np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma ** 2))
    return np.repeat((np.clip(image, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=2)


def _centroid_near(gray: np.ndarray, point: np.ndarray, radius: int) -> np.ndarray:
    x0, y0 = (int(round(v)) for v in point)
    window = gray[y0 - radius:y0 + radius + 1, x0 - radius:x0 + radius + 1].astype(np.float64)
    window = np.where(window > 40, window, 0)
    ys, xs = np.mgrid[y0 - radius:y0 + radius + 1, x0 - radius:x0 + radius + 1]
    return np.array([(xs * window).sum(), (ys * window).sum()]) / window.sum()


@pytest.mark.parametrize("scale, angle, frame", [
    (0.8, 0.0, (240, 320)),  # a small face, upright
    (1.1, 17.0, (300, 300)),  # tilted head
    (5.0, -9.0, (1100, 1000)),  # a face far larger than the crop: the area-shrink path
])
def test_landmarks_land_on_the_template(scale, angle, frame):
    height, width = frame
    face = _face_from_crop_similarity(scale, angle, (width / 2, height / 2))
    rgb = _spots(height, width, face.landmarks, sigma=2.5 * scale)
    crop = landmark_align(rgb, face, SIZE)
    assert crop.shape == (SIZE, SIZE, 3) and crop.dtype == np.uint8
    for found, wanted in zip((_centroid_near(crop[..., 0], p, 9) for p in landmark_template(SIZE)),
                             landmark_template(SIZE)):
        assert np.linalg.norm(found - wanted) < 0.5, (found, wanted)


def test_similarity_transform_recovers_a_known_similarity():
    rng = np.random.default_rng(0)
    source = rng.uniform(0, 200, (5, 2))
    a, s, t = 0.3, 1.7, np.array([12.0, -40.0])
    expected = np.hstack([s * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]), t[:, None]])
    target = source @ expected[:, :2].T + t
    assert np.allclose(similarity_transform(source, target), expected, atol=1e-9)


@pytest.fixture(scope="module")
def detector() -> MTCNNDetector:
    return MTCNNDetector(DetectorSettings(quantization="int8"))


def _largest(faces: list[Face]) -> Face:
    return max(faces, key=lambda f: f.width * f.height)


def test_eyes_of_a_real_face_land_on_the_template(detector, celebrities):
    """A frontal sample photo: the transform takes the detected eyes to the template within 2 px,
    and the detector run again on the aligned crop finds the eyes there."""
    photo = sorted((celebrities / "val" / "ben_afflek").glob("*.jpg"))[0]
    rgb = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
    face = _largest(detector.detect_rgb(rgb))
    matrix = landmark_transform(face, SIZE)
    eyes = face.landmarks[:2] @ matrix[:, :2].T + matrix[:, 2]
    template_eyes = landmark_template(SIZE)[:2]
    assert np.all(np.linalg.norm(eyes - template_eyes, axis=1) < 2.0), eyes
    crop = landmark_align(rgb, face, SIZE)
    canvas = np.zeros((2 * SIZE, 2 * SIZE, 3), np.uint8)  # context for the detector's pyramid
    canvas[SIZE // 2:SIZE // 2 + SIZE, SIZE // 2:SIZE // 2 + SIZE] = crop
    again = _largest(detector.detect_rgb(canvas))
    found_eyes = again.landmarks[:2] - SIZE // 2
    assert np.all(np.linalg.norm(found_eyes - template_eyes, axis=1) < 3.5), found_eyes


def test_aligned_crops_of_all_sample_faces_put_the_eyes_where_the_transform_says(detector, celebrities):
    """Over every val photo, the eyes re-detected on the aligned crop are (median) within 2 px of
    where the transform put them: the warp and the matrix agree on real images."""
    errors = []
    for photo in sorted((celebrities / "val").glob("*/*.jpg")):
        rgb = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
        face = _largest(detector.detect_rgb(rgb))
        matrix = landmark_transform(face, SIZE)
        canvas = np.zeros((2 * SIZE, 2 * SIZE, 3), np.uint8)
        canvas[SIZE // 2:SIZE // 2 + SIZE, SIZE // 2:SIZE // 2 + SIZE] = landmark_align(rgb, face, SIZE)
        found = detector.detect_rgb(canvas)
        if found:
            mapped = face.landmarks[:2] @ matrix[:, :2].T + matrix[:, 2]
            errors.append(np.linalg.norm(_largest(found).landmarks[:2] - SIZE // 2 - mapped, axis=1))
    assert len(errors) >= 20
    assert np.median(errors) < 3.0, np.median(errors, axis=0)


def _box_frame(scale: int) -> tuple[np.ndarray, Face]:
    """A grey frame with a white 80 x 120 box (times ``scale``) and the face of that box."""
    frame = np.full((300 * scale, 400 * scale, 3), 60, np.uint8)
    x1, y1, x2, y2 = (v * scale for v in (150, 80, 230, 200))
    frame[y1:y2, x1:x2] = 255
    return frame, Face((x1, y1, x2, y2), 1.0, np.zeros((5, 2), np.float32))


def test_margin_crop_keeps_the_face_box_centred():
    frame, face = _box_frame(1)  # 80 x 120: squared to 120, grown to fill 128 of 160
    crop = margin_crop(frame, face, SIZE, 32)
    ys, xs = np.nonzero(crop[..., 0] > 160)
    assert abs((xs.min() + xs.max() + 1) / 2 - SIZE / 2) <= 1
    assert abs((ys.min() + ys.max() + 1) / 2 - SIZE / 2) <= 1
    assert abs((ys.max() - ys.min() + 1) - 128) <= 2
    assert abs((xs.max() - xs.min() + 1) - 128 * 80 / 120) <= 2


def test_tutorial_crop_stretches_the_box_and_its_margin_to_the_crop():
    frame, face = _box_frame(1)
    crop = tutorial_crop(frame, face, SIZE, 0.30)
    # margin 0.30 * sqrt(80 * 120) = 29.4 px, 15 per side: 110 x 150 px resized to 160 x 160
    ys, xs = np.nonzero(crop[..., 0] > 160)
    assert abs((xs.max() - xs.min() + 1) - 80 / 110 * SIZE) <= 2
    assert abs((ys.max() - ys.min() + 1) - 120 / 150 * SIZE) <= 2
    assert abs((xs.min() + xs.max() + 1) / 2 - SIZE / 2) <= 1
    assert abs((ys.min() + ys.max() + 1) / 2 - SIZE / 2) <= 1


def test_tutorial_crop_margin_scales_with_the_face():
    small, large = (tutorial_crop(*_box_frame(scale), SIZE) for scale in (1, 3))
    assert np.mean(np.abs(small.astype(int) - large.astype(int)) > 40) < 0.02


def test_tutorial_crop_clips_at_the_frame_edge():
    frame = np.full((240, 320, 3), 200, np.uint8)
    leaving = Face((-30.0, 60.0, 50.0, 180.0), 1.0, np.zeros((5, 2), np.float32))
    crop = tutorial_crop(frame, leaving, SIZE)
    assert crop.shape == (SIZE, SIZE, 3) and np.all(crop == 200)  # the part inside, stretched
    gone = Face((-500.0, -500.0, -400.0, -380.0), 1.0, np.zeros((5, 2), np.float32))
    assert not tutorial_crop(frame, gone, SIZE).any()


def test_landmark_faces_at_the_frame_edge_are_padded_black():
    frame = np.full((240, 320, 3), 200, np.uint8)
    leaving = _face_from_crop_similarity(0.9, 0.0, (10.0, 120.0))  # crop centre 10 px from the left edge
    crop = landmark_align(frame, leaving, SIZE)
    assert crop.shape == (SIZE, SIZE, 3)
    assert np.all(crop[:, :40] == 0)  # left of the frame: black
    assert np.all(crop[40:120, -30:] == 200)  # inside the frame: the frame
    gone = _face_from_crop_similarity(0.9, 0.0, (-500.0, -500.0))
    assert not landmark_align(frame, gone, SIZE).any()


def test_methods_are_picked_by_name(manifest):
    assert tuple(ALIGNERS) == ALIGNMENTS == ("margin", "landmarks")
    assert ALIGNERS["margin"] is tutorial_crop
    with pytest.raises(ValueError, match="margin, landmarks"):
        aligner("affine")
    spec = manifest.embedder()
    assert aligner_for(spec) is ALIGNERS[spec.alignment]
    assert align_faces(np.zeros((50, 50, 3), np.uint8), [], "landmarks").shape == (0, SIZE, SIZE, 3)
    face = _face_from_crop_similarity(0.9, 0.0, (160.0, 120.0))
    frame = np.random.default_rng(1).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    both = align_faces(frame, [face, face], "landmarks")
    assert both.shape == (2, SIZE, SIZE, 3) and np.array_equal(both[0], landmark_align(frame, face, SIZE))
