"""Record the reference MTCNN's faces on real photos, for the detector parity test.

The reference is ``mtcnn==1.0.0`` (ipazc) on TensorFlow with the same weights and our
default parameters (minimum face 20, thresholds 0.6 / 0.7 / 0.7; its own O-Net default is
0.8). Photos: the 118 photos of the 5-celebrity set (one face, and a few with two or three)
and, where Debian's ``opencv-doc`` is installed, its sample photos without a face. The
fixture holds numbers only: photo names, boxes, scores and landmarks.

    ~/venv-export/bin/python scripts/record_detector_reference.py
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from mtcnn import MTCNN  # noqa: E402

from edge.runtime.sample_data import celebrity_dataset  # noqa: E402
from parity_inputs import read_rgb  # noqa: E402
from reference_photos import OPENCV_DOC_DATA, OPENCV_DOC_NO_FACE  # noqa: E402

FIXTURE = REPO / "tests" / "fixtures" / "detector_reference.npz"


def photos() -> list[tuple[str, Path]]:
    """(name in the fixture, path) of every reference photo."""
    root = celebrity_dataset()
    found = [(str(p.relative_to(root)), p) for p in sorted(root.glob("*/*/*.jpg"))]
    if not OPENCV_DOC_DATA.is_dir():
        raise SystemExit(f"{OPENCV_DOC_DATA}: not found; apt-get install opencv-doc")
    found += [(f"opencv-doc/{name}", OPENCV_DOC_DATA / name) for name in OPENCV_DOC_NO_FACE]
    return found


def main() -> None:
    """Run the reference on every photo and write the fixture."""
    detector = MTCNN()
    names, counts, boxes, scores, landmarks = [], [], [], [], []
    for name, path in photos():
        # Unrounded numbers: rows of [image, x1, y1, x2, y2, score, x1..x5, y1..y5].
        faces = detector.detect_faces(read_rgb(path), min_face_size=20, threshold_pnet=0.6, threshold_rnet=0.7,
                                      threshold_onet=0.7, output_type="numpy", box_format="xyxy")
        names.append(name)
        counts.append(len(faces))
        for row in np.asarray(faces).reshape(-1, 16):
            boxes.append(row[1:5])
            scores.append(row[5])
            landmarks.append(np.stack([row[6:11], row[11:16]], axis=1))
        print(f"{len(faces)} face(s)  {name[:90]}")
    np.savez_compressed(
        FIXTURE, photos=np.array(names), counts=np.array(counts, dtype=np.int32),
        boxes=np.array(boxes, dtype=np.float32).reshape(-1, 4), scores=np.array(scores, dtype=np.float32),
        landmarks=np.array(landmarks, dtype=np.float32).reshape(-1, 5, 2))
    print(f"{FIXTURE}: {len(names)} photos, {sum(counts)} faces, {FIXTURE.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
