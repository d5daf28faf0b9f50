"""Square crops of integer boxes, zero-padded where a box leaves the frame."""
from __future__ import annotations

import cv2
import numpy as np


def square_crops(rgb: np.ndarray, boxes: np.ndarray, size: int, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Square crops of integer boxes (x2, y2 inclusive), zero-padded outside the frame, resized to ``size``.

    Bilinear (the default) is what the detector's stages need and costs a tenth of INTER_AREA.
    """
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
