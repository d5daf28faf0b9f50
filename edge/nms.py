"""Non-maximum suppression as the reference MTCNN does it (matrix form, no +1 pixel)."""
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
