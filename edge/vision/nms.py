"""Box overlap: intersection over union of box sets, and non-maximum suppression as the
reference MTCNN does it (matrix form, no +1 pixel)."""
from __future__ import annotations

from typing import Literal

import numpy as np

_BLOCK = 512  # rows of the overlap matrix computed at once: bounds memory on crowded frames


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float,
        method: Literal["union", "min"] = "union") -> np.ndarray:
    """Indices of the boxes kept, best score first.

    A box is dropped when it overlaps any better-scoring box by more than ``threshold``,
    whether or not that box was itself dropped (the reference's matrix NMS, which keeps a
    little less than greedy NMS). Overlap is intersection over union, or over the smaller
    box with ``method="min"``. ``boxes`` is (N, 4) x1, y1, x2, y2.
    """
    order = np.argsort(scores)[::-1]
    ranked = boxes[order]
    x1, y1, x2, y2 = ranked[:, 0], ranked[:, 1], ranked[:, 2], ranked[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(len(ranked), dtype=bool)
    for start in range(0, len(ranked), _BLOCK):
        rows = slice(start, start + _BLOCK)
        inter = (np.maximum(0.0, np.minimum(x2[rows, None], x2) - np.maximum(x1[rows, None], x1))
                 * np.maximum(0.0, np.minimum(y2[rows, None], y2) - np.maximum(y1[rows, None], y1)))
        if method == "min":
            denominator = np.minimum(areas[rows, None], areas)
        else:
            denominator = areas[rows, None] + areas - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            overlap = inter / denominator
        later = np.arange(len(ranked)) > np.arange(start, min(start + _BLOCK, len(ranked)))[:, None]
        suppressed |= np.any((overlap > threshold) & later, axis=0)
    return order[~suppressed]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in ``a`` (N, 4) with every box in ``b`` (M, 4)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
