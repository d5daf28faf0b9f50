"""Cutting a detected face out of the frame the way the embedder expects it.

Two preparations, chosen by name (:data:`ALIGNERS`, the manifest's ``alignment`` of an
embedder): ``margin``, the tutorial's box crop (:func:`tutorial_crop`), and ``landmarks``, a similarity transform of
the 5 MTCNN landmarks onto a fixed template (followed by a fixed horizontal stretch that
reproduces the geometry of FaceNet's training crops). Enrollment and recognition must call the same one:
use :func:`aligner_for` / :func:`align_faces` with the embedder's spec rather than picking
a function by hand.
"""
from __future__ import annotations

from typing import Callable, Sequence

import cv2
import numpy as np

from ..face import Face
from ..runtime.model_files import ALIGNMENTS, ModelSpec
from .crop import square_crops

ARCFACE_TEMPLATE_112 = np.array([
    [38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041],
], dtype=np.float64)
"""The widely published 5-point template of ArcFace/InsightFace for 112x112 crops (pixels)."""

LANDMARK_TEMPLATE = np.array([
    [0.3316, 0.4066], [0.6684, 0.4066], [0.5000, 0.5653], [0.3487, 0.6993], [0.6513, 0.6993],
], dtype=np.float64)
"""Where :func:`landmark_align` puts left eye, right eye, nose, left and right mouth corner, as
fractions of the crop side (x, y): the mean landmark positions, mirror-symmetrised, in the crops
FaceNet (davidsandberg) was made for (MTCNN box + 32 px margin of the 250x250 LFW image, resized
to 160x160 without keeping the aspect ratio), measured on LFW folds 1-4; see docs/recognition.md.
It is wider and looser than :data:`ARCFACE_TEMPLATE_112`, which scored lower with these models."""

LANDMARK_STRETCH = 1.26
"""Horizontal stretch of those crops: the box plus margin is ~1.26 times as tall as wide (median
on LFW) and is resized to a square, so FaceNet saw faces widened by that much. The landmark
alignment fits a similarity to the template compressed by this factor, then widens by it."""


MARGIN_FRACTION = 0.30
"""The tutorial crop's margin as a fraction of the box's geometric-mean side sqrt(w * h), split
evenly between opposite sides: davidsandberg's ``align_dataset_mtcnn.py`` adds 32 px (16 per side)
to MTCNN boxes of the 250x250 LFW images, and the median box there is 91 x 123 px, whose
geometric-mean side is 106 px (32 / 106 = 0.30). Scaling with the face keeps the crop the same
for faces of any size."""


def tutorial_crop(rgb: np.ndarray, face: Face, size: int = 160, fraction: float = MARGIN_FRACTION) -> np.ndarray:
    """The crop davidsandberg's FaceNet was trained and evaluated on: the detector's box, not
    squared, enlarged by ``fraction`` of sqrt(w * h) (half on each side), clipped to the frame
    and resized to ``size`` x ``size`` without keeping the aspect ratio (bilinear; area
    averaging when it shrinks). A box entirely outside the frame gives a black crop."""
    height, width = rgb.shape[:2]
    x1, y1, x2, y2 = face.box
    pad = fraction * np.sqrt(max(x2 - x1, 1.0) * max(y2 - y1, 1.0)) / 2
    left, top = max(round(x1 - pad), 0), max(round(y1 - pad), 0)
    right, bottom = min(round(x2 + pad), width), min(round(y2 + pad), height)
    if right <= left or bottom <= top:
        return np.zeros((size, size, 3), dtype=np.uint8)
    patch = rgb[top:bottom, left:right]
    shrinks = patch.shape[0] > size and patch.shape[1] > size
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA if shrinks else cv2.INTER_LINEAR)


def margin_crop(rgb: np.ndarray, face: Face, size: int = 160, margin: int = 32) -> np.ndarray:
    """A square crop (for people to look at, e.g. exported enrollment crops): the box, squared
    about its centre, grown so the face fills ``size - margin`` of ``size`` pixels, then
    resized to ``size`` (outside the frame is black). The embedders use :func:`tutorial_crop`."""
    x1, y1, x2, y2 = face.box
    side = max(x2 - x1, y2 - y1) * size / (size - margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    box = np.round([[cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]])
    return square_crops(rgb, box, size, cv2.INTER_AREA)[0]


def landmark_template(size: int = 160) -> np.ndarray:
    """(5, 2) template landmark positions in pixels of a ``size`` x ``size`` crop."""
    return LANDMARK_TEMPLATE * size


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity (rotation, uniform scale, translation) taking ``source``
    points (N, 2) onto ``target`` points (Umeyama 1991, reflections excluded)."""
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_var = (src_c ** 2).sum() / len(src)
    if src_var < 1e-12:
        raise ValueError("landmarks are degenerate (all at one point)")
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1] = -1.0
    rotation = u @ np.diag(sign) @ vt
    scale = (singular * sign).sum() / src_var
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - matrix[:, :2] @ src_mean
    return matrix


def landmark_transform(face: Face, size: int = 160) -> np.ndarray:
    """The 2x3 matrix :func:`landmark_align` warps with (frame pixels -> crop pixels): the
    least-squares similarity onto the template compressed by :data:`LANDMARK_STRETCH` about the
    crop's vertical centre line, followed by that fixed horizontal stretch."""
    unstretched = landmark_template(size)
    unstretched[:, 0] = size / 2 + (unstretched[:, 0] - size / 2) / LANDMARK_STRETCH
    matrix = similarity_transform(face.landmarks, unstretched)
    matrix[0] = LANDMARK_STRETCH * matrix[0]
    matrix[0, 2] += (1 - LANDMARK_STRETCH) * size / 2
    return matrix


def landmark_align(rgb: np.ndarray, face: Face, size: int = 160) -> np.ndarray:
    """The face warped so that its 5 landmarks best fit :data:`LANDMARK_TEMPLATE` (least-squares
    similarity, then the fixed :data:`LANDMARK_STRETCH`); (size, size, 3) uint8, black outside
    the frame.

    Faces much larger than the crop are shrunk with area averaging first, so the result
    does not alias (warpAffine itself only samples bilinearly).
    """
    matrix = landmark_transform(face, size)
    scale = float(np.linalg.svd(matrix[:, :2], compute_uv=False).min())
    source = rgb
    if scale < 0.5:
        source, matrix = _shrunk_region(rgb, matrix, size, scale)
    return cv2.warpAffine(source, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def _shrunk_region(rgb: np.ndarray, matrix: np.ndarray, size: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The part of ``rgb`` the crop covers, resized by ``scale`` (INTER_AREA), and the warp
    matrix re-expressed for it."""
    height, width = rgb.shape[:2]
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], dtype=np.float64)
    mapped = corners @ inverse.T
    x0, y0 = np.maximum(np.floor(mapped.min(axis=0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(mapped.max(axis=0)).astype(int) + 1, [width, height])
    if x1 - x0 < 2 or y1 - y0 < 2:
        return rgb, matrix
    out_w, out_h = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
    small = cv2.resize(rgb[y0:y1, x0:x1], (out_w, out_h), interpolation=cv2.INTER_AREA)
    # A pixel centre u of ``small`` is the point (u + 0.5) * step - 0.5 + origin of ``rgb``.
    step = np.array([(x1 - x0) / out_w, (y1 - y0) / out_h])
    offset = 0.5 * step - 0.5 + np.array([x0, y0])
    adjusted = np.empty((2, 3))
    adjusted[:, :2] = matrix[:, :2] * step[None, :]
    adjusted[:, 2] = matrix[:, :2] @ offset + matrix[:, 2]
    return small, adjusted


Aligner = Callable[[np.ndarray, Face, int], np.ndarray]

ALIGNERS: dict[str, Aligner] = {
    "margin": tutorial_crop,
    "landmarks": landmark_align,
}
"""Face preparations by name: ``margin`` (:func:`tutorial_crop`) and ``landmarks``."""
assert tuple(ALIGNERS) == ALIGNMENTS


def aligner(name: str) -> Aligner:
    """The preparation called ``name``, or an error listing the known ones."""
    try:
        return ALIGNERS[name]
    except KeyError:
        raise ValueError(f"unknown alignment {name!r}; expected one of {', '.join(ALIGNERS)}") from None


def aligner_for(spec: ModelSpec) -> Aligner:
    """The preparation the manifest declares for embedder ``spec``."""
    return aligner(spec.alignment)


def align_faces(rgb: np.ndarray, faces: Sequence[Face], method: str, size: int = 160) -> np.ndarray:
    """(N, size, size, 3) uint8 crops of ``faces`` in the RGB frame, prepared by ``method``."""
    prepare = aligner(method)
    if not faces:
        return np.empty((0, size, size, 3), dtype=np.uint8)
    return np.stack([prepare(rgb, face, size) for face in faces])
