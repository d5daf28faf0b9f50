"""Detector speed and tracking recall: per-stage milliseconds and frames per second.

For each source (the shared videos when present, and a synthetic 640x480 frame built from a
sample photo, which any machine has) and each model precision, runs full detection on every
frame and tracking-assisted detection, and prints a Markdown table. Tracking recall is the
share of faces found by full detection that tracking also finds (IoU >= 0.5); "steady recall"
counts only the faces full detection also finds in the frame before or after (IoU >= 0.3), so
it leaves out the one-frame detections, which on the shared clips are mostly false ones
(hair, a hand on a microphone: docs/detector.md). "total ms" is
the sum of the stages; "wall ms" is the whole call (colour conversion, crops, bookkeeping,
and for tracking its scene-cut check), from which fps is computed.

    python scripts/benchmark_detector.py [--min-face 40] [--pyramid exact|cascaded] [--frames 275] [--data ../shared/data]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.vision.detector import STAGES, DetectorSettings, MTCNNDetector  # noqa: E402
from edge.face import Face  # noqa: E402
from edge.vision.nms import iou_matrix  # noqa: E402
from edge.runtime.sample_data import celebrity_dataset  # noqa: E402
from edge.vision.tracked_detection import TrackingDetector, TrackingSettings  # noqa: E402


def video_frames(path: Path, limit: int) -> list[np.ndarray]:
    """Up to ``limit`` BGR frames of a video file."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < limit:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    if not frames:
        raise SystemExit(f"{path}: no frames could be read")
    return frames


def synthetic_frames(count: int) -> list[np.ndarray]:
    """A sample portrait pasted on a grey 640x480 canvas, drifting 2 px per frame."""
    photo = cv2.imread(str(sorted((celebrity_dataset() / "val").glob("*/*.jpg"))[0]))
    photo = cv2.resize(photo, (200, int(200 * photo.shape[0] / photo.shape[1])))
    frames = []
    for i in range(count):
        canvas = np.full((480, 640, 3), 110, np.uint8)
        x, y = 100 + (2 * i) % 300, 100
        h = min(photo.shape[0], 480 - y)
        canvas[y:y + h, x:x + photo.shape[1]] = photo[:h]
        frames.append(canvas)
    return frames


def run(detect, frames: list[np.ndarray], timings) -> tuple[list[list[Face]], dict[str, list[float]]]:
    """Faces per frame, and milliseconds per frame of each stage and of the whole call (``wall``)."""
    per_stage: dict[str, list[float]] = {stage: [] for stage in (*STAGES, "wall")}
    results = []
    for frame in frames:
        started = time.perf_counter()
        results.append(detect(frame))
        per_stage["wall"].append((time.perf_counter() - started) * 1000)
        for stage in STAGES:
            per_stage[stage].append(timings()[stage])
    return results, per_stage


def recall(reference: list[list[Face]], found: list[list[Face]]) -> tuple[int, int]:
    """Reference faces matched (IoU >= 0.5) in the same frame, and the reference total."""
    matched = total = 0
    for ref_faces, faces in zip(reference, found):
        total += len(ref_faces)
        if ref_faces and faces:
            overlaps = iou_matrix(np.array([r.box for r in ref_faces]), np.array([f.box for f in faces]))
            matched += int(np.sum(overlaps.max(axis=1) >= 0.5))
    return matched, total


def steady(reference: list[list[Face]]) -> list[list[Face]]:
    """The faces of each frame that full detection also finds in the frame before or after."""
    def seen(face: Face, frame: int) -> bool:
        others = reference[frame] if 0 <= frame < len(reference) else []
        return bool(others) and iou_matrix(np.array([face.box]), np.array([o.box for o in others])).max() >= 0.3
    return [[face for face in faces if seen(face, i - 1) or seen(face, i + 1)] for i, faces in enumerate(reference)]


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--min-face", type=float, default=40)
    parser.add_argument("--frames", type=int, default=275)
    parser.add_argument("--full-every", type=int, default=TrackingSettings().full_every)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pyramid", choices=("exact", "cascaded"), default="cascaded")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get(
        "EDGE_EVAL_DATA", Path(__file__).resolve().parent.parent.parent / "shared" / "data")))
    args = parser.parse_args()
    sources = {"synthetic 640x480": synthetic_frames(min(args.frames, 150))}
    for name in ("stage_640x360.mp4", "street_1080p.mp4"):
        path = args.data / "videos" / name
        if path.exists():
            sources[name] = video_frames(path, args.frames)
        else:
            print(f"({path} not found: skipped)")
    print(f"minimum face {args.min_face:g} px, {args.pyramid} pyramid, {args.threads} threads, "
          f"full pyramid every {args.full_every} "
          "frames when tracking; milliseconds are means per frame")
    print("| source | models | mode | " + " | ".join(STAGES) + " | total ms | wall ms | fps | faces | tracking recall | steady recall |")
    print("|---|---|---|" + "---|" * len(STAGES) + "---|---|---|---|---|---|")
    for source, frames in sources.items():
        for quantization in ("float32", "int8"):
            detector = MTCNNDetector(DetectorSettings(min_face_size=args.min_face, quantization=quantization,
                                                      num_threads=args.threads, pyramid=args.pyramid))
            detector.detect(frames[0])  # warm-up: interpreters for this frame size
            full, full_ms = run(detector.detect, frames, lambda: detector.timings)
            tracker = TrackingDetector(detector, TrackingSettings(full_every=args.full_every))
            tracked, tracked_ms = run(tracker.detect, frames, lambda: tracker.timings)
            matched, total = recall(full, tracked)
            steady_matched, steady_total = recall(steady(full), tracked)
            for mode, faces, stage_ms in (("full", full, full_ms), ("tracking", tracked, tracked_ms)):
                means = [statistics.fmean(stage_ms[stage]) for stage in STAGES]
                wall = statistics.fmean(stage_ms["wall"])
                kept = (f"{100.0 * matched / max(total, 1):.1f}% of {total} | "
                        f"{100.0 * steady_matched / max(steady_total, 1):.1f}% of {steady_total}") if mode == "tracking" else " | "
                print(f"| {source} | {quantization} | {mode} | " + " | ".join(f"{m:.2f}" for m in means)
                      + f" | {sum(means):.2f} | {wall:.2f} | {1000 / max(wall, 1e-6):.0f} | {sum(map(len, faces))} "
                      f"| {kept} |", flush=True)


if __name__ == "__main__":
    main()
