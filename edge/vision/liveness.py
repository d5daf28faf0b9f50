"""Passive liveness: is a face a live person in front of the camera, or a photo or a screen held up to it?

MiniFASNet V2 and V1SE (Silent-Face-Anti-Spoofing, Apache-2.0; models/README.md) each look at the
face box widened by their manifest's ``crop_scale`` (2.7 and 4.0: the face and what is around it,
where a paper's border, a screen's edge, glare or moiré show), as raw BGR pixels at 80x80, and give
the probability that the face is live. The checker averages the models it runs, as their authors do.

The models were trained on RetinaFace boxes, which are wider, shorter and lower on the face than
MTCNN's; each model's manifest entry declares the measured mapping from our box to that one
(``box_mapping``: width and height factors, downward shift in box heights; docs/liveness.md).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ..face import Face
from ..runtime.model_files import Manifest, ModelSpec
from ..runtime.tflite_model import TFLiteModel


def crop_box(width: int, height: int, box_xywh: Sequence[float], scale: float) -> tuple[int, int, int, int]:
    """Inclusive (x1, y1, x2, y2) of a model's crop: the box's w x h times ``scale`` about its centre,
    the scale capped so that the crop fits the image, and a crop that leaves the image shifted back
    inside it (not clipped); corners truncated to int, as the models' authors crop."""
    x, y, w, h = (float(v) for v in box_xywh)
    scale = min((height - 1) / h, (width - 1) / w, scale)
    half_w, half_h = w * scale / 2, h * scale / 2
    x1, y1, x2, y2 = x + w / 2 - half_w, y + h / 2 - half_h, x + w / 2 + half_w, y + h / 2 + half_h
    if x1 < 0:
        x1, x2 = 0, x2 - x1
    if y1 < 0:
        y1, y2 = 0, y2 - y1
    if x2 > width - 1:
        x1, x2 = x1 - (x2 - width + 1), width - 1
    if y2 > height - 1:
        y1, y2 = y1 - (y2 - height + 1), height - 1
    return int(x1), int(y1), int(x2), int(y2)


def crop(image_bgr: np.ndarray, box_xywh: Sequence[float], scale: float, size: tuple[int, int] = (80, 80)) -> np.ndarray:
    """A model's input for one face: float32 (height, width, 3) BGR, raw 0..255, bilinear-resized."""
    height, width = image_bgr.shape[:2]
    x1, y1, x2, y2 = crop_box(width, height, box_xywh, scale)
    patch = image_bgr[y1:y2 + 1, x1:x2 + 1]
    return cv2.resize(patch, (size[1], size[0]), interpolation=cv2.INTER_LINEAR).astype(np.float32)


def mapped_box(face: Face, mapping: tuple[float, float, float]) -> tuple[float, float, float, float]:
    """``face``'s box as (x, y, w, h), ``mapping`` = (width factor, height factor, downward shift of the
    centre in box heights) applied about its centre."""
    width_factor, height_factor, shift = mapping
    x1, y1, x2, y2 = face.box
    w, h = (x2 - x1) * width_factor, (y2 - y1) * height_factor
    centre_x, centre_y = (x1 + x2) / 2, (y1 + y2) / 2 + shift * (y2 - y1)
    return centre_x - w / 2, centre_y - h / 2, w, h


def liveness_specs(manifest: Manifest, models: Sequence[str], quantization: str) -> list[ModelSpec]:
    """The manifest entries of ``models`` (``minifasnetv2``, ``minifasnetv1se``) in ``quantization``
    (``float32`` or ``int8``)."""
    tag = "fp32" if quantization == "float32" else "int8"
    return [manifest.models[f"antispoof-{model}-{tag}"] for model in models]


class SpoofModel:
    """One MiniFASNet: its crop scale, input size and live class come from the manifest."""

    def __init__(self, spec: ModelSpec, num_threads: int = 2, models_dir: Path | None = None) -> None:
        if spec.kind != "antispoof" or spec.input_size is None or spec.crop_scale is None or spec.live_class is None:
            raise ValueError(f"model {spec.name!r} is not an antispoof model with input size, crop scale and live class")
        self.box_mapping = spec.box_mapping
        self.spec = spec
        self._model = TFLiteModel(spec, num_threads, models_dir, max_shapes=2)
        self._classes = max(self._model.output_widths)

    def live_probability(self, image_bgr: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """(N,) p(live) of ``faces`` (our detector's boxes) in a BGR image."""
        crops = np.stack([crop(image_bgr, mapped_box(face, self.box_mapping), self.spec.crop_scale, self.spec.input_size)
                          for face in faces])
        # one face at a time: a single input shape keeps a single interpreter (faces per frame vary)
        return np.array([self._model.run(one[None])[self._classes][0, self.spec.live_class] for one in crops])


class LivenessChecker:
    """The chosen MiniFASNet models on the faces of a frame: p(live) averaged over the models."""

    def __init__(self, specs: Sequence[ModelSpec], num_threads: int = 2, models_dir: Path | None = None) -> None:
        if not specs:
            raise ValueError("a liveness checker needs at least one model")
        self.models = [SpoofModel(spec, num_threads, models_dir) for spec in specs]

    @property
    def names(self) -> list[str]:
        """Manifest names of the models in use."""
        return [model.spec.name for model in self.models]

    def score(self, image_bgr: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """(N,) float32 p(live) in [0, 1] of ``faces`` in the BGR frame ``image_bgr``."""
        if not faces:
            return np.empty(0, np.float32)
        return np.mean([model.live_probability(image_bgr, faces) for model in self.models], axis=0).astype(np.float32)
