"""A door camera's view made from files any machine has, for the motion gate's test and benchmark.

- The empty scene: Debian's ``opencv-doc`` photo ``building.jpg`` (a hotel entrance, no face: it is one
  of the detector parity set's faceless photos), resized to 640x480.
- Sensor noise: Gaussian, ``NOISE_SIGMA`` grey levels per pixel and channel, new on every frame
  (the benchmark cycles a bank of noise frames made once, so that making frames costs nothing).
- Light: during the empty part the light drifts slowly (+10% over the first second) and then the
  camera's auto-exposure steps (x0.85 at once): neither is anybody arriving.
- A person walking in: a held-out photo of the 5-celebrity sample set (PyPI, ``edge.runtime.sample_data``),
  scaled to ``NEAR`` (at the door) or ``FAR`` pixels tall, slides in from the right edge to the middle
  of the frame at ``WALK_PX`` pixels a frame, then stands still.

Without opencv-doc the background is a smooth synthetic texture of the same size (said in the output).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

BACKGROUND = Path("/usr/share/doc/opencv-doc/examples/data/building.jpg")
FRAME_SIZE = (640, 480)  # width, height: the daemon's default camera size
FPS = 30.0
NOISE_SIGMA = 3.0  # grey levels: a webcam's sensor noise in daylight at 640x480
NEAR, FAR = 260, 120  # pixels: height of the photo of the person walking in, at the door (a face of about
# 130 px) and further away (a face of about 60 px: the motion then fits a window, which is searched alone)
WALK_PX = 14  # pixels a frame: walking pace at the door
PERSON_BOTTOM = 410  # row of the photo's bottom edge


def background(size: tuple[int, int] = FRAME_SIZE) -> tuple[np.ndarray, str]:
    """The empty scene (BGR) and where it came from."""
    image = cv2.imread(str(BACKGROUND)) if BACKGROUND.exists() else None
    if image is not None:
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA), f"opencv-doc {BACKGROUND.name}"
    rng = np.random.default_rng(7)
    texture = cv2.GaussianBlur(rng.uniform(40, 220, (size[1], size[0], 3)).astype(np.float32), (0, 0), 9)
    return cv2.normalize(texture, None, 30, 220, cv2.NORM_MINMAX).astype(np.uint8), "synthetic texture"


def noisy(image: np.ndarray, rng: np.random.Generator, gain: float = 1.0, sigma: float = NOISE_SIGMA) -> np.ndarray:
    """``image`` times ``gain`` plus fresh Gaussian sensor noise, as uint8."""
    frame = image.astype(np.float32) * gain + rng.normal(0.0, sigma, image.shape).astype(np.float32)
    return np.clip(frame, 0, 255).astype(np.uint8)


def noise_bank(image: np.ndarray, count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` noisy copies of ``image``, to be cycled as a still scene's frames."""
    rng = np.random.default_rng(seed)
    return [noisy(image, rng) for _ in range(count)]


@dataclass(frozen=True)
class WalkIn:
    """A clip: frames, the first frame any of the person shows, and the frame the exposure steps at."""

    frames: list[np.ndarray]
    enters_at: int
    exposure_step_at: int


def walk_in(scene: np.ndarray, person: np.ndarray, height: int = NEAR, empty_s: float = 2.0, stand_s: float = 1.0,
            seed: int = 0) -> WalkIn:
    """``empty_s`` seconds of the empty ``scene`` (slow light drift, then an exposure step), then ``person``
    (BGR photo) ``height`` pixels tall walking in from the right edge to the middle and standing there
    ``stand_s`` seconds."""
    rng = np.random.default_rng(seed)
    width = scene.shape[1]
    scale = height / person.shape[0]
    figure = cv2.resize(person, (round(person.shape[1] * scale), height), interpolation=cv2.INTER_AREA)
    top = PERSON_BOTTOM - height
    empty = round(empty_s * FPS)
    drift = round(FPS)  # light rises 10% over the first second, then the exposure steps at 60% of the empty part
    step_at = round(empty * 0.6)
    gains = [1.0 + 0.1 * min(i, drift) / drift for i in range(empty)]
    gains = [g * (0.85 if i >= step_at else 1.0) for i, g in enumerate(gains)]
    frames = [noisy(scene, rng, g) for g in gains]
    left_end = (width - figure.shape[1]) // 2
    x = width
    while True:
        x = max(left_end, x - WALK_PX)
        frames.append(noisy(_placed(scene, figure, x, top), rng, gains[-1]))
        if x == left_end:
            break
    frames += [noisy(_placed(scene, figure, left_end, top), rng, gains[-1]) for _ in range(round(stand_s * FPS))]
    return WalkIn(frames, empty, step_at)


def _placed(scene: np.ndarray, figure: np.ndarray, x: int, top: int) -> np.ndarray:
    """``scene`` with ``figure``'s left edge at column ``x`` (cut off at the frame's right edge)."""
    frame = scene.copy()
    visible = min(figure.shape[1], scene.shape[1] - x)
    frame[top:top + figure.shape[0], x:x + visible] = figure[:, :visible]
    return frame
