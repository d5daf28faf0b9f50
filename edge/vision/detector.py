"""MTCNN face detector (Zhang et al. 2016) on TFLite: P-Net pyramid, R-Net, O-Net with 5 landmarks.

Numpy and OpenCV only. Frames arrive as BGR uint8 (OpenCV, picamera2's RGB888); the one
conversion to the models' RGB happens in :func:`to_rgb`.
"""
from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import cv2
import numpy as np

from ..errors import EdgeError
from ..face import Face
from ..runtime.interpreter import runtime_name
from ..runtime.model_files import load_manifest
from ..runtime.tflite_model import TFLiteModel
from .crop import crop_and_resize
from .nms import nms
from .preprocess import normalise_fixed

_PROB = 2  # output widths: face probabilities, box regression, landmarks
_REG = 4
_LANDMARKS = 10
_MAX_BATCH = 128
STAGES = ("pyramid", "pnet", "nms", "rnet", "onet")
Region = tuple[int, int, int, int]  # x1, y1, x2, y2 of a part of a frame, pixels, x2 and y2 exclusive


class InvalidFrameError(EdgeError):
    """A frame that is not an image the detector can read."""


@dataclass(frozen=True)
class DetectorSettings:
    """Cascade parameters; the defaults are the reference MTCNN's."""

    min_face_size: float = 20.0
    scale_factor: float = 0.709
    pnet_threshold: float = 0.6
    rnet_threshold: float = 0.7
    onet_threshold: float = 0.7
    pnet_level_nms: float = 0.5  # IoU within one pyramid level
    pnet_across_nms: float = 0.7  # IoU across pyramid levels
    rnet_nms: float = 0.7  # IoU after R-Net
    onet_nms: float = 0.7  # overlap over the smaller box after O-Net
    pyramid: str = "cascaded"  # cascaded: each level from the one above (4x cheaper); exact: from the frame, as the reference
    quantization: str = "auto"  # int8, float32, or auto: by CPU architecture (resolve_quantization)
    num_threads: int = 2

    def __post_init__(self) -> None:
        if self.min_face_size < 12:
            raise ValueError(f"min_face_size must be at least 12 pixels, got {self.min_face_size}")
        if not 0.1 <= self.scale_factor < 1.0:
            raise ValueError(f"scale_factor must be in [0.1, 1), got {self.scale_factor}")
        for field in fields(self):
            if field.name.endswith(("_threshold", "_nms")):
                value = getattr(self, field.name)
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"{field.name} must be in [0, 1], got {value}")
        if self.pyramid not in ("exact", "cascaded"):
            raise ValueError(f"pyramid must be exact or cascaded, got {self.pyramid!r}")
        if self.quantization not in ("auto", "int8", "float32"):
            raise ValueError(f"quantization must be auto, int8 or float32, got {self.quantization!r}")
        if self.num_threads < 1:
            raise ValueError(f"num_threads must be at least 1, got {self.num_threads}")


def to_rgb(frame: object) -> np.ndarray:
    """The frame as contiguous RGB uint8 (H, W, 3); BGR, BGRA and grayscale are accepted."""
    if not isinstance(frame, np.ndarray):
        raise InvalidFrameError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise InvalidFrameError(f"frame must be uint8, got {frame.dtype}")
    channels = 1 if frame.ndim == 2 else frame.shape[2] if frame.ndim == 3 else 0
    if channels not in (1, 3, 4):
        raise InvalidFrameError(f"frame must be (H, W), (H, W, 3) or (H, W, 4), got shape {frame.shape}")
    if frame.size == 0:
        return np.zeros((*frame.shape[:2], 3), dtype=np.uint8)
    if channels == 1:
        return cv2.cvtColor(frame.reshape(frame.shape[:2]), cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB if channels == 3 else cv2.COLOR_BGRA2RGB)


def resolve_quantization(requested: str) -> str:
    """``auto`` without a device tuning (the daemon measures instead: edge.vision.device_tuning): int8 where
    XNNPACK was expected to run the int8 detector fastest (ARM), else float32.

    - tflite-runtime 2.14: float32; its default delegate takes only float graphs (its int8
      kernels ran the detector 10-20x slower on x86; see docs/models.md).
    - ai-edge-litert on ARM (Raspberry Pi, Jetson): int8.
    - ai-edge-litert on x86: float32. XNNPACK's int8 P-Net and R-Net ran about twice as slow
      as float32 both on an AVX2 CPU and on an AVX-512 VNNI one (docs/detector.md).
    """
    if requested != "auto":
        return requested
    if runtime_name() != "ai-edge-litert":
        return "float32"
    if platform.machine().lower() in ("x86_64", "amd64", "i686", "x86"):
        return "float32"
    return "int8"


def pyramid_scales(height: int, width: int, min_face_size: float, scale_factor: float) -> list[float]:
    """Scales at which P-Net's 12-pixel window sees faces from ``min_face_size`` up to the frame."""
    base = 12.0 / min_face_size
    side = min(height, width) * base
    scales = []
    while side >= 12.0:
        scales.append(base * scale_factor ** len(scales))
        side *= scale_factor
    return scales


def _squared(boxes: np.ndarray) -> np.ndarray:
    """Boxes grown to squares about their centres."""
    width = boxes[:, 2] - boxes[:, 0]
    height = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(width, height)
    out = boxes.copy()
    out[:, 0] = boxes[:, 0] + width * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + height * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _regressed(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Boxes moved by the networks' regression offsets (fractions of the box size, +1 pixel convention)."""
    width = boxes[:, 2] - boxes[:, 0] + 1
    height = boxes[:, 3] - boxes[:, 1] + 1
    return boxes + offsets * np.stack([width, height, width, height], axis=1)


def _batch_size(count: int) -> int:
    """The interpreter batch a stage runs ``count`` crops in: the next multiple of 4 up to 32 (tracking
    passes run 4-20 crops; a power of two would pad 20 to 32), then the next power of two: 12 shapes."""
    if count <= 2:
        return count
    if count <= 32:
        return -(-count // 4) * 4
    return 1 << (count - 1).bit_length()


class MTCNNDetector:
    """Finds faces, their confidence and 5 landmarks in BGR frames."""

    def __init__(self, settings: DetectorSettings | None = None, models_dir: Path | None = None) -> None:
        self.settings = settings or DetectorSettings()
        models = load_manifest(models_dir).models
        self.quantization = resolve_quantization(self.settings.quantization)
        suffix = "fp32" if self.quantization == "float32" else "int8"
        self.model_names = tuple(f"mtcnn-{stage}-{suffix}" for stage in ("pnet", "rnet", "onet"))
        pnet, rnet, onet = (models[name] for name in self.model_names)
        threads = self.settings.num_threads
        self._pnet = TFLiteModel(pnet, threads, models_dir, max_shapes=32)
        self._rnet = TFLiteModel(rnet, threads, models_dir)
        self._onet = TFLiteModel(onet, threads, models_dir)
        self.timings: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self._buffer = np.empty(0, np.float32)  # the normalised frame (or region), kept while it fits

    def detect(self, frame: object, region: Region | None = None) -> list[Face]:
        """Faces in a BGR (or BGRA, grayscale) uint8 frame, best score first (``region``: see
        :meth:`detect_rgb`)."""
        return self.detect_rgb(to_rgb(frame), region=region)

    @property
    def followed(self) -> list[tuple[float, float, float, float]]:
        """Nothing is followed between frames: every call is a full pass (the interface a frame stream's
        detectors share with TrackingDetector)."""
        return []

    def reset(self) -> None:
        """Nothing to forget (see :attr:`followed`)."""

    def detect_rgb(self, rgb: np.ndarray, onet_threshold: float | None = None,
                   region: Region | None = None) -> list[Face]:
        """Faces in an RGB uint8 frame: the full cascade. Per-stage milliseconds go to ``timings``.

        ``onet_threshold`` overrides the last stage's threshold for this call (tracking asks
        for near-misses too). With ``region`` (x1, y1, x2, y2, exclusive), the pyramid covers only
        that part of the frame (faces of the minimum size up to the region's size); R-Net and O-Net
        then see the whole frame around each candidate, as on a full pass, and boxes are in frame
        coordinates."""
        self.timings = dict.fromkeys(STAGES, 0.0)
        height, width = rgb.shape[:2]
        x1, y1, x2, y2 = (0, 0, width, height) if region is None else region
        whole = (x1, y1, x2, y2) == (0, 0, width, height)
        searched = rgb if whole else rgb[y1:y2, x1:x2]
        if min(searched.shape[:2]) < self.settings.min_face_size:
            return []
        started = time.perf_counter()
        image = normalise_fixed(searched, out=self._normalised_buffer(searched.shape))
        self.timings["pyramid"] += (time.perf_counter() - started) * 1000  # the frame's normalisation counts there
        if whole:
            return self._confirm(image, self._propose(image), onet_threshold)
        candidates = self._propose(image)
        candidates[:, :4] += (x1, y1, x1, y1)
        return self._confirm(rgb, candidates, onet_threshold, normalise_fixed)

    def _normalised_buffer(self, shape: tuple[int, ...]) -> np.ndarray:
        """A float32 array of ``shape`` over the one buffer kept for normalised frames and regions."""
        size = int(np.prod(shape))
        if self._buffer.size < size:
            self._buffer = np.empty(size, np.float32)
        return self._buffer[:size].reshape(shape)

    def detect_near(self, rgb: np.ndarray, boxes: list[tuple[float, float, float, float]],
                    growth: tuple[float, ...] = (0.9, 1.0, 1.15, 1.3), threshold: float | None = None,
                    settle: float | None = None) -> list[Face]:
        """Faces near earlier boxes by O-Net alone (no pyramid, no R-Net): the tracking path.

        Each box is squared about its centre at every factor in ``growth``; O-Net's regression
        moves the candidates onto faces that moved a little since. ``threshold`` (default: the
        O-Net threshold) may be lower than a new face needs: a face seen before keeps its track.
        With ``settle``, each box is searched at ``growth[0]`` alone first, and at the other
        factors only when that first box scores ``settle`` or less (most tracked faces stay
        put, so most need one O-Net crop instead of one per factor).
        Only the pixels under the search boxes are normalised, not the whole frame.
        """
        self.timings = dict.fromkeys(STAGES, 0.0)
        if not boxes:
            return []
        started = time.perf_counter()
        corners = np.asarray(boxes, dtype=np.float64)
        centres = (corners[:, :2] + corners[:, 2:]) / 2
        sides = np.maximum(corners[:, 2] - corners[:, 0], corners[:, 3] - corners[:, 1])

        def around(selected: np.ndarray, factors: tuple[float, ...]) -> np.ndarray:
            return np.concatenate([np.concatenate([centres[selected] - (sides[selected] * g / 2)[:, None],
                                                   centres[selected] + (sides[selected] * g / 2)[:, None]], axis=1)
                                   for g in factors])

        first = growth if settle is None else growth[:1]
        candidates = around(np.arange(len(corners)), first)
        outputs = self._run_batched(self._onet, rgb, candidates, 48, normalise_fixed)
        unsettled = np.flatnonzero(outputs[_PROB][:, 1] <= settle) if len(first) < len(growth) else []
        if len(unsettled):
            more = around(unsettled, growth[len(first):])
            extra = self._run_batched(self._onet, rgb, more, 48, normalise_fixed)
            candidates = np.concatenate([candidates, more])
            outputs = {width: np.concatenate([values, extra[width]]) for width, values in outputs.items()}
        faces = self._faces(rgb.shape, candidates, outputs, threshold)
        self.timings["onet"] = (time.perf_counter() - started) * 1000
        return faces

    def _confirm(self, image: np.ndarray, boxes: np.ndarray, onet_threshold: float | None = None,
                 prepare: Callable[[np.ndarray], np.ndarray] | None = None) -> list[Face]:
        """R-Net then O-Net on candidate square boxes (N, 4+) of a normalised frame (or of a raw one that
        ``prepare`` normalises under the crops)."""
        if len(boxes):
            started = time.perf_counter()
            boxes = self._refine(image, boxes, prepare)
            self.timings["rnet"] += (time.perf_counter() - started) * 1000
        if not len(boxes):
            return []
        started = time.perf_counter()
        faces = self._output(image, boxes, onet_threshold, prepare)
        self.timings["onet"] += (time.perf_counter() - started) * 1000
        return faces

    def _propose(self, image: np.ndarray) -> np.ndarray:
        """P-Net over the pyramid of a normalised frame: square candidate boxes (N, 5) with scores.

        A P-Net cell (x, y) stands for the box from 2x+1 to 2x+12 at its level (the original
        1-based convention), moved by the regression times 11 and mapped back by the scale.
        """
        height, width = image.shape[:2]
        s = self.settings
        per_level = []
        clock = time.perf_counter
        source = image
        for scale in pyramid_scales(height, width, s.min_face_size, s.scale_factor):
            started = clock()
            level = cv2.resize(source, (int(width * scale), int(height * scale)), interpolation=cv2.INTER_AREA)
            if s.pyramid == "cascaded":
                source = level
            resized = clock()
            outputs = self._pnet.run(level[None])
            ran = clock()
            self.timings["pyramid"] += (resized - started) * 1000
            self.timings["pnet"] += (ran - resized) * 1000
            prob = outputs[_PROB][0, :, :, 1]
            ys, xs = np.nonzero(prob > s.pnet_threshold)
            if not len(ys):
                continue
            cells = np.stack([2 * xs + 1, 2 * ys + 1, 2 * xs + 12, 2 * ys + 12], axis=1)
            boxes = (cells + outputs[_REG][0, ys, xs] * 11.0) / scale
            scores = prob[ys, xs]
            kept = nms(boxes, scores, s.pnet_level_nms)
            per_level.append(np.concatenate([boxes[kept], scores[kept, None]], axis=1))
            self.timings["nms"] += (clock() - ran) * 1000
        if not per_level:
            return np.empty((0, 5), dtype=np.float64)
        started = clock()
        candidates = np.concatenate(per_level)
        candidates = candidates[nms(candidates[:, :4], candidates[:, 4], s.pnet_across_nms)]
        self.timings["nms"] += (clock() - started) * 1000
        return np.concatenate([_squared(candidates[:, :4]), candidates[:, 4:5]], axis=1)

    def _run_batched(self, model: TFLiteModel, image: np.ndarray, boxes: np.ndarray, size: int,
                     prepare: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[int, np.ndarray]:
        """A stage network on crops of ``boxes``, in batches of a few fixed sizes (a bounded set of interpreter shapes);
        ``prepare`` normalises a raw frame's cropped region (see :func:`crop_and_resize`)."""
        results: dict[int, list[np.ndarray]] = {}
        for start in range(0, len(boxes), _MAX_BATCH):
            chunk = boxes[start:start + _MAX_BATCH]
            padded = _batch_size(len(chunk))
            batch = np.zeros((padded, size, size, 3), dtype=np.float32)
            batch[:len(chunk)] = crop_and_resize(image, chunk, size, prepare=prepare)
            for width, values in model.run(batch).items():
                results.setdefault(width, []).append(values[:len(chunk)])
        return {width: np.concatenate(parts) for width, parts in results.items()}

    def _refine(self, image: np.ndarray, boxes: np.ndarray,
                prepare: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
        """R-Net on 24x24 crops: surviving square boxes (N, 5) with scores."""
        s = self.settings
        outputs = self._run_batched(self._rnet, image, boxes[:, :4], 24, prepare)
        scores = outputs[_PROB][:, 1]
        keep = scores > s.rnet_threshold
        boxes, scores = _regressed(boxes[keep, :4], outputs[_REG][keep]), scores[keep]
        picked = nms(boxes, scores, s.rnet_nms)
        return np.concatenate([_squared(boxes[picked]), scores[picked, None]], axis=1)

    def _output(self, image: np.ndarray, boxes: np.ndarray, threshold: float | None = None,
                prepare: Callable[[np.ndarray], np.ndarray] | None = None) -> list[Face]:
        """O-Net on 48x48 crops: final faces with landmarks, in frame coordinates."""
        return self._faces(image.shape, boxes, self._run_batched(self._onet, image, boxes[:, :4], 48, prepare),
                           threshold)

    def _faces(self, shape: tuple[int, ...], boxes: np.ndarray, outputs: dict[int, np.ndarray],
               threshold: float | None = None) -> list[Face]:
        """Faces from O-Net's ``outputs`` on ``boxes``: thresholded, regressed, NMS'd and clipped to a frame of ``shape``."""
        s = self.settings
        scores = outputs[_PROB][:, 1]
        keep = scores > (s.onet_threshold if threshold is None else threshold)
        boxes, scores = boxes[keep, :4], scores[keep]
        offsets, points = outputs[_REG][keep], outputs[_LANDMARKS][keep]
        width = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        height = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        xs = width * points[:, 0:5] + boxes[:, 0:1] - 1
        ys = height * points[:, 5:10] + boxes[:, 1:2] - 1
        boxes = _regressed(boxes, offsets)
        picked = nms(boxes, scores, s.onet_nms, method="min")
        frame_h, frame_w = shape[:2]
        clipped = np.clip(boxes[picked], 0, [frame_w - 1, frame_h - 1, frame_w - 1, frame_h - 1])
        return [
            Face(box=tuple(float(v) for v in box), score=float(score),
                 landmarks=np.stack([x, y], axis=1).astype(np.float32))
            for box, score, x, y in zip(clipped, scores[picked], xs[picked], ys[picked])
        ]
