"""The detector's crops: sampling only the region the boxes cover gives the same pixels."""
from __future__ import annotations

import numpy as np

from edge.vision.crop import crop_and_resize
from edge.vision.preprocess import normalise_fixed


def test_normalising_only_the_cropped_region_gives_the_same_samples():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
    whole = normalise_fixed(frame)
    for _ in range(100):
        count = int(rng.integers(1, 6))
        centres = rng.uniform(-50, 700, (count, 2))  # some boxes leave the frame on any side
        sides = rng.uniform(5, 300, (count, 1))
        boxes = np.concatenate([centres - sides / 2, centres + sides / 2], axis=1)
        expected = crop_and_resize(whole, boxes, 48)
        assert np.array_equal(crop_and_resize(frame, boxes, 48, prepare=normalise_fixed), expected)


def test_samples_outside_the_frame_take_the_outside_value():
    frame = np.full((100, 100, 3), 200, np.uint8)
    crop = crop_and_resize(frame, np.array([[-100.0, 0.0, 99.0, 99.0]]), 24, outside=0.0, prepare=normalise_fixed)
    assert np.all(crop[0, :, :11] == 0.0)  # the left half lies outside
    assert np.allclose(crop[0, :, 13:], (200 - 127.5) / 128)
