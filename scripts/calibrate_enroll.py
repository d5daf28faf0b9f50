"""Measure what edge-enroll's thresholds should be, on real photos; prints the figures in docs/enroll.md.

Data: the 5-celebrity photos from PyPI (always), and LFW people with at least 6 photos from the
evaluation data (``--data``, ``$EDGE_EVAL_DATA`` or ``../shared/data``) when present. For every
photo: the daemon's detector and FaceEncoder, the dominant face, its quality figures. Then:

- consistency: each photo's median cosine to the person's other photos (genuine), and the same
  for one photo of somebody else slipped into the folder (impostor);
- near-duplicates: cosine between a photo and a re-encoded copy (JPEG quality 60, resized to 70%),
  against the highest cosine between two different photos of one person;
- blur: Gaussian blur of sigma 1, 2, 3 pixels (of a 160-pixel face) -> sharpness of the aligned
  crop and the median cosine to the person's other (sharp) photos;
- face size: the photo shrunk so the face is 24 ... 80 px tall -> the same cosine;
- yaw: its distribution, and the cosine of the most turned faces.

    python scripts/calibrate_enroll.py --lfw-people 40
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.vision.detector import DetectorSettings, MTCNNDetector  # noqa: E402
from edge.enroll.selection import choose_face  # noqa: E402
from edge.vision.face_encoder import FaceEncoder  # noqa: E402
from edge.runtime.model_files import load_manifest  # noqa: E402
from edge.enroll.photos import PhotoSkipped, load_photo  # noqa: E402
from edge.vision.quality import assess  # noqa: E402
from edge.runtime.sample_data import celebrity_dataset  # noqa: E402


def people_photos(lfw_people: int, data: Path) -> dict[str, list[Path]]:
    """Person -> photo paths: the celebrities (train + val) and, where present, some LFW people."""
    people: dict[str, list[Path]] = {}
    root = celebrity_dataset()
    for split in ("train", "val"):
        for folder in sorted((root / split).iterdir()):
            people.setdefault(folder.name, []).extend(sorted(folder.iterdir()))
    lfw = data / "lfw" / "lfw-deepfunneled"
    if lfw.is_dir() and lfw_people:
        many = [f for f in sorted(lfw.iterdir()) if len(list(f.iterdir())) >= 6]
        step = max(1, len(many) // lfw_people)
        for folder in many[::step][:lfw_people]:
            people[f"lfw/{folder.name}"] = sorted(folder.iterdir())[:8]
    else:
        print(f"(no LFW at {lfw}: celebrities only)")
    return people


class Probe:
    """Detector + encoder; one face's embedding, sharpness and yaw for an image."""

    def __init__(self) -> None:
        self.detector = MTCNNDetector(DetectorSettings(min_face_size=20))
        self.encoder = FaceEncoder(load_manifest().embedder())

    def measure(self, bgr: np.ndarray):
        """(embedding, quality) of the dominant face, or None."""
        try:
            face = choose_face(self.detector.detect(bgr), 1.5)
        except PhotoSkipped:
            return None
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        crop = self.encoder.align(rgb, [face])
        return self.encoder.embed_crops(crop)[0], assess(face, crop[0])


def pct(values, qs=(1, 5, 50, 95, 99)) -> str:
    values = np.asarray(values, dtype=np.float64)
    return "  ".join(f"p{q}={np.percentile(values, q):.3f}" for q in qs) + f"  (n={len(values)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = Path(os.environ.get("EDGE_EVAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--lfw-people", type=int, default=40)
    args = parser.parse_args()
    probe = Probe()
    threshold = load_manifest().embedder().match_threshold
    people = people_photos(args.lfw_people, args.data)
    images: dict[str, list[np.ndarray]] = {}
    embeddings: dict[str, list[np.ndarray]] = {}
    qualities: dict[str, list] = {}
    for name, paths in people.items():
        for path in paths:
            try:
                bgr = load_photo(path).image
            except PhotoSkipped:
                continue
            measured = probe.measure(bgr)
            if measured is None:
                continue
            images.setdefault(name, []).append(bgr)
            embeddings.setdefault(name, []).append(measured[0])
            qualities.setdefault(name, []).append(measured[1])
    names = [n for n in embeddings if len(embeddings[n]) >= 3]
    print(f"{sum(len(embeddings[n]) for n in names)} photos of {len(names)} people with a dominant face; "
          f"match threshold {threshold}")

    genuine, impostor, max_distinct = [], [], []
    for i, name in enumerate(names):
        rows = np.stack(embeddings[name])
        sim = rows @ rows.T
        np.fill_diagonal(sim, np.nan)
        genuine.extend(np.nanmedian(sim, axis=1))
        max_distinct.append(np.nanmax(sim))
        for other in names[:i] + names[i + 1:]:
            impostor.append(float(np.median(rows @ embeddings[other][0])))
    print("consistency, genuine photo: median cosine to the others ", pct(genuine))
    print("consistency, impostor photo: median cosine to the person", pct(impostor))
    for t in (0.25, 0.3, 0.35, 0.4, 0.45, threshold):
        print(f"  threshold {t:.3f}: genuine left out {np.mean(np.array(genuine) < t):.1%}, "
              f"impostors kept {np.mean(np.array(impostor) >= t):.2%}")

    copies = []
    for name in names:
        for bgr, emb in zip(images[name], embeddings[name]):
            small = cv2.resize(bgr, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
            ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 60])
            measured = probe.measure(cv2.imdecode(data, cv2.IMREAD_COLOR))
            if measured is not None:
                copies.append(float(measured[0] @ emb))
    print("near-duplicates: cosine to a re-encoded copy ", pct(copies))
    print("near-duplicates: highest cosine of 2 distinct photos per person", pct(max_distinct, (50, 95, 99, 100)))
    for limit in (0.93, 0.95, 0.97):
        print(f"  near-duplicate at {limit}: copies caught {np.mean(np.array(copies) >= limit):.1%}, people losing a "
              f"distinct photo {np.mean(np.array(max_distinct) >= limit):.1%}")

    def median_to_others(name: str, index: int, embedding: np.ndarray) -> float:
        others = [e for j, e in enumerate(embeddings[name]) if j != index]
        return float(np.median(np.stack(others) @ embedding))

    print("blur (sigma relative to a 160 px face): sharpness of crop | median cosine to the other photos")
    sample = [(n, i) for n in names for i in range(len(images[n]))][::2]
    for sigma in (0.0, 1.0, 2.0, 3.0):
        sharp, cos = [], []
        for name, index in sample:
            bgr = images[name][index]
            s = sigma * qualities[name][index].height_px / 160.0
            blurred = cv2.GaussianBlur(bgr, (0, 0), s) if s > 0 else bgr
            measured = probe.measure(blurred)
            if measured is None:
                continue
            sharp.append(measured[1].sharpness)
            cos.append(median_to_others(name, index, measured[0]))
        print(f"  sigma {sigma}: sharpness {pct(sharp, (1, 5, 50, 95))} | cosine {pct(cos, (5, 50))} "
              f"below threshold {np.mean(np.array(cos) < threshold):.1%}; sharpness below 15: "
              f"{np.mean(np.array(sharp) < 15):.1%}, below 30: {np.mean(np.array(sharp) < 30):.1%}")

    print("face height (photo shrunk): median cosine to the other photos")
    for height in (24, 32, 40, 60, 80):
        cos, sharp = [], []
        for name, index in sample:
            bgr, height_px = images[name][index], qualities[name][index].height_px
            if height_px < height * 1.2:
                continue
            f = height / height_px
            measured = probe.measure(cv2.resize(bgr, None, fx=f, fy=f, interpolation=cv2.INTER_AREA))
            if measured is None:
                continue
            cos.append(median_to_others(name, index, measured[0]))
            sharp.append(measured[1].sharpness)
        if cos:
            print(f"  {height} px: cosine {pct(cos, (5, 50))} below threshold {np.mean(np.array(cos) < threshold):.1%}"
                  f"; sharpness {pct(sharp, (5, 50))}")

    every = [q for name in names for q in qualities[name]]
    yaws = np.array([q.yaw for q in every])
    heights = np.array([q.height_px for q in every])
    sharpness = np.array([q.sharpness for q in every])
    print("yaw of all photos", pct(yaws, (50, 90, 95, 99, 100)))
    print("face height of all photos", pct(heights, (1, 5, 50)))
    print("sharpness of all photos", pct(sharpness, (1, 5, 50)))
    flat = [(qualities[name][index].yaw, median_to_others(name, index, embedding))
            for name in names for index, embedding in enumerate(embeddings[name])]
    for low, high in ((0, 0.2), (0.2, 0.35), (0.35, 0.5), (0.5, 9)):
        chosen = [c for y, c in flat if low <= y < high]
        if chosen:
            print(f"  yaw {low}-{high}: median cosine to others {pct(chosen, (5, 50))} "
                  f"below threshold {np.mean(np.array(chosen) < threshold):.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
