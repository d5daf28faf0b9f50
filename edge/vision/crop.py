"""Crops of boxes out of a frame: the detector's bilinear samples and the embedder's padded crops."""
from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np


def crop_and_resize(image: np.ndarray, boxes: np.ndarray, size: int, outside: float = 0.0,
                    prepare: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """(N, size, size, C) bilinear samples of ``image`` over boxes (N, 4) x1, y1, x2, y2, in one remap.

    Samples a ``size`` x ``size`` grid whose corners lie on the box corners; rows and
    columns that fall outside the image take ``outside``. Box coordinates are scaled by
    (W-1)/W and (H-1)/H first, as the reference MTCNN's crops are (TensorFlow's
    crop_and_resize on boxes normalised by the image size). OpenCV places samples to 1/32
    pixel.

    Only the region the samples read is taken; ``prepare`` (e.g. the models' normalisation)
    is applied to that region alone, so a few crops of a large uint8 frame do not pay for
    converting all of it. The samples equal those of ``prepare(image)``.
    """
    height, width = image.shape[:2]
    count = len(boxes)
    steps = np.linspace(0.0, 1.0, size)
    boxes = np.asarray(boxes, dtype=np.float64)
    xs = (boxes[:, 0:1] + (boxes[:, 2:3] - boxes[:, 0:1]) * steps) * ((width - 1) / width)
    ys = (boxes[:, 1:2] + (boxes[:, 3:4] - boxes[:, 1:2]) * steps) * ((height - 1) / height)
    if not count:
        return np.zeros((0, size, size, image.shape[2]), dtype=image.dtype if prepare is None else np.float32)
    # A bilinear sample at x reads the pixels floor(x) and floor(x) + 1; samples outside the frame are replaced.
    x0 = int(np.clip(np.floor(xs.min()), 0, width - 1))
    y0 = int(np.clip(np.floor(ys.min()), 0, height - 1))
    x1 = int(np.clip(np.floor(xs.max()) + 2, x0 + 1, width))
    y1 = int(np.clip(np.floor(ys.max()) + 2, y0 + 1, height))
    region = image[y0:y1, x0:x1]
    if prepare is not None:
        region = prepare(region)
    map_x = np.broadcast_to(xs[:, None, :] - x0, (count, size, size)).reshape(count * size, size).astype(np.float32)
    map_y = np.broadcast_to(ys[:, :, None] - y0, (count, size, size)).reshape(count * size, size).astype(np.float32)
    out = cv2.remap(region, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out = out.reshape(count, size, size, region.shape[2])
    inside_x = (xs >= 0) & (xs <= width - 1)
    inside_y = (ys >= 0) & (ys <= height - 1)
    out[~(inside_y[:, :, None] & inside_x[:, None, :])] = outside
    return out


def square_crops(rgb: np.ndarray, boxes: np.ndarray, size: int, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Square crops of integer boxes (x2, y2 inclusive), zero-padded outside the frame, resized to ``size``."""
    height, width = rgb.shape[:2]
    out = np.empty((len(boxes), size, size, 3), dtype=np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(boxes.astype(np.int64)):
        box_w, box_h = x2 - x1 + 1, y2 - y1 + 1
        if box_w < 1 or box_h < 1:
            out[i] = 0
            continue
        if x1 >= 0 and y1 >= 0 and x2 < width and y2 < height:
            patch = rgb[y1:y2 + 1, x1:x2 + 1]
        else:
            patch = np.zeros((box_h, box_w, 3), dtype=np.uint8)
            sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2 + 1, width), min(y2 + 1, height)
            if sx2 > sx1 and sy2 > sy1:
                patch[sy1 - y1:sy2 - y1, sx1 - x1:sx2 - x1] = rgb[sy1:sy2, sx1:sx2]
        out[i] = cv2.resize(patch, (size, size), interpolation=interpolation)
    return out
