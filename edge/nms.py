"""Greedy non-maximum suppression over boxes, vectorised per kept box."""
from __future__ import annotations

from typing import Literal

import numpy as np


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float,
        method: Literal["union", "min"] = "union") -> np.ndarray:
    """Indices of boxes kept, best score first.

    ``boxes`` is (N, 4) x1, y1, x2, y2. Overlap is intersection over union, or over the
    smaller box with ``method="min"``. Areas use the +1 pixel convention of MTCNN.
    """
    if len(boxes) == 0:
        return np.empty(0, dtype=np.intp)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores, kind="stable")[::-1]
    keep: list[int] = []
    while order.size:
        best = order[0]
        keep.append(int(best))
        rest = order[1:]
        inter_w = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        inter_h = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        inter = inter_w * inter_h
        if method == "min":
            overlap = inter / np.minimum(areas[best], areas[rest])
        else:
            overlap = inter / (areas[best] + areas[rest] - inter)
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.intp)
