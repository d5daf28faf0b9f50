"""Detector quality on the WIDER FACE validation subset and on photos without a face.

Runs our MTCNN (float32 and int8 models, minimum face 20, default thresholds) and, where
TensorFlow and ``mtcnn==1.0.0`` import (the export venv), the reference ipazc MTCNN with the
same weights and thresholds, all on the same images in one run, and prints a Markdown table:

- AP: PASCAL VOC-style all-point interpolated average precision at IoU 0.5, from the scores
  of the faces each detector returns as configured (no threshold is lowered). Detections
  are taken best score first over the whole set; each is matched to the ground-truth box it
  overlaps most (VOC devkit rule): IoU >= 0.5 with an unclaimed face is a true positive, with
  a claimed one a false positive (duplicate), with an ignored face neither. Faces flagged
  ``invalid`` are ignored; for the ">= 40 px" figures faces under 40 px tall are ignored too.
- recall and precision of everything returned (the default thresholds);
- false detections per negative image (``negatives/``: no human face in any photo);
- mean milliseconds per WIDER image (the detect call on a decoded frame).

Data: ``widerface-val/`` and ``negatives/`` of the evaluation data folder (``--data``, else
``$EDGE_EVAL_DATA``, else ``../shared/data`` beside the repository). Detections are cached in
``~/.cache/edge-facerec/wider/`` keyed by detector, settings, runtime and a digest of the
detector code and model files, so the table is regenerated in seconds; ``--fresh`` reruns.

    python scripts/evaluate_detector.py [--data DIR] [--markdown docs/detector.md] [--no-reference]
    /work/venv-export/bin/python scripts/evaluate_detector.py --markdown docs/detector.md   # with the reference
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edge.vision.detector import DetectorSettings, MTCNNDetector  # noqa: E402
from edge.runtime.interpreter import runtime_name  # noqa: E402
from edge.runtime.model_files import load_manifest  # noqa: E402
from edge.vision.nms import iou_matrix  # noqa: E402

CACHE_DIR = Path.home() / ".cache" / "edge-facerec" / "wider"
GT_FILE = "wider_face_val_bbx_gt.txt"
SECTION = "## Quality on WIDER FACE (val subset) and negatives"
MIN_FACE = 20
IOU = 0.5
LARGE = 40  # px: the ">= 40 px" figures count faces at least this tall
# Source files whose change invalidates our cached detections.
OUR_CODE = ("detector.py", "crop.py", "nms.py", "preprocess.py", "tflite_model.py", "interpreter.py")


def default_data_dir() -> Path:
    """``$EDGE_EVAL_DATA``, else ``../shared/data`` beside the repository."""
    return Path(os.environ.get("EDGE_EVAL_DATA", REPO.parent / "shared" / "data"))


# ----------------------------------------------------------------------------- ground truth

@dataclass
class GroundTruth:
    """Faces of one image: boxes (N, 4) x1, y1, x2, y2 and the ``invalid`` flag."""

    boxes: np.ndarray
    invalid: np.ndarray


def read_wider_gt(path: Path) -> dict[str, GroundTruth]:
    """Image path (relative to ``images/``) -> faces, from the official box format.

    Per image: a file line, a count line, then ``x y w h blur expression illumination invalid
    occlusion pose`` per face; a count of 0 is followed by one line of zeros.
    """
    lines = [line.strip() for line in path.read_text().splitlines()]
    lines = [line for line in lines if line]
    out: dict[str, GroundTruth] = {}
    i = 0
    while i < len(lines):
        name = lines[i]
        if not name.lower().endswith((".jpg", ".jpeg", ".png")):
            raise ValueError(f"{path}: line {i + 1}: expected an image path, got {name!r}")
        try:
            count = int(lines[i + 1])
        except (IndexError, ValueError):
            raise ValueError(f"{path}: line {i + 2}: expected a face count after {name}") from None
        rows = lines[i + 2:i + 2 + max(count, 1)]  # count 0: one line of zeros follows
        if len(rows) < max(count, 1):
            raise ValueError(f"{path}: {name}: {count} faces announced, file ends early")
        values = np.array([[float(v) for v in row.split()[:10]] for row in rows[:count]], dtype=np.float64)
        values = values.reshape(-1, 10)
        boxes = np.concatenate([values[:, 0:2], values[:, 0:2] + values[:, 2:4]], axis=1)
        out[name] = GroundTruth(boxes=boxes, invalid=values[:, 7] > 0)
        i += 2 + max(count, 1)
    return out


# ----------------------------------------------------------------------------- detectors

@dataclass
class Detector:
    name: str
    key: dict  # everything the detections depend on
    detect: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # BGR -> boxes (N, 4) x1y1x2y2, scores (N,)

    @property
    def cache_file(self) -> Path:
        digest = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()[:16]
        slug = self.name.replace(" ", "_").replace("/", "_")
        return CACHE_DIR / f"{slug}-{digest}.npz"


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def ours(quantization: str, pyramid: str = "exact") -> Detector:
    """Our cascade with default settings (minimum face 20), the given models and pyramid."""
    settings = DetectorSettings(quantization=quantization, min_face_size=MIN_FACE, pyramid=pyramid)
    detector = MTCNNDetector(settings)
    manifest = load_manifest()
    suffix = "fp32" if detector.quantization == "float32" else "int8"
    model_hashes = [manifest.models[f"mtcnn-{n}-{suffix}"].sha256 for n in ("pnet", "rnet", "onet")]

    def detect(bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        faces = detector.detect(bgr)
        return (np.array([f.box for f in faces], dtype=np.float64).reshape(-1, 4),
                np.array([f.score for f in faces], dtype=np.float64))

    key = {"detector": "edge.MTCNNDetector", "settings": repr(settings), "runtime": runtime_name(),
           "models": model_hashes, "code": _digest([REPO / "edge" / f for f in OUR_CODE])}
    tag = "" if pyramid == "exact" else f", {pyramid} pyramid"
    return Detector(f"ours {detector.quantization}{tag}", key, detect)


def reference() -> Detector | None:
    """ipazc ``mtcnn`` on TensorFlow with our thresholds (its O-Net default is 0.8), or None."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import mtcnn
        import tensorflow as tf
        from mtcnn import MTCNN
    except ImportError as error:
        print(f"reference skipped: {error} (run in the export venv for it)", file=sys.stderr)
        return None
    model = MTCNN()
    params = dict(min_face_size=MIN_FACE, threshold_pnet=0.6, threshold_rnet=0.7, threshold_onet=0.7)

    def detect(bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        rows = np.asarray(model.detect_faces(rgb, output_type="numpy", box_format="xyxy", **params))
        rows = rows.reshape(-1, 16)  # image index, x1, y1, x2, y2, score, 10 landmark coordinates
        return rows[:, 1:5].astype(np.float64), rows[:, 5].astype(np.float64)

    version = getattr(mtcnn, "__version__", None) or _dist_version("mtcnn")
    key = {"detector": "mtcnn.MTCNN", "mtcnn": version, "tensorflow": tf.__version__, "params": params}
    return Detector(f"reference mtcnn {version} (TF {tf.__version__})", key, detect)


def _dist_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


# ----------------------------------------------------------------------------- running, with a cache

@dataclass
class Detections:
    boxes: dict[str, np.ndarray] = field(default_factory=dict)
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    ms: dict[str, float] = field(default_factory=dict)


def load_cache(path: Path) -> Detections:
    found = Detections()
    if not path.is_file():
        return found
    with np.load(path, allow_pickle=False) as data:
        names, counts = data["names"].tolist(), data["counts"]
        starts = np.concatenate([[0], np.cumsum(counts)])
        for i, name in enumerate(names):
            found.boxes[name] = data["boxes"][starts[i]:starts[i + 1]]
            found.scores[name] = data["scores"][starts[i]:starts[i + 1]]
            found.ms[name] = float(data["ms"][i])
    return found


def save_cache(path: Path, found: Detections, key: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    names = sorted(found.boxes)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp, names=np.array(names), counts=np.array([len(found.scores[n]) for n in names], dtype=np.int64),
        boxes=np.concatenate([found.boxes[n] for n in names]).reshape(-1, 4) if names else np.empty((0, 4)),
        scores=np.concatenate([found.scores[n] for n in names]) if names else np.empty(0),
        ms=np.array([found.ms[n] for n in names]), key=json.dumps(key, sort_keys=True))
    tmp.replace(path)


def run(detector: Detector, images: list[tuple[str, Path]], fresh: bool) -> Detections:
    """Detections of every image (id, path), from the cache where present."""
    path = detector.cache_file
    found = Detections() if fresh else load_cache(path)
    todo = [(n, p) for n, p in images if n not in found.boxes]
    if todo:
        detector.detect(cv2.imread(str(todo[0][1])))  # warm-up: interpreters, TF tracing
        started = time.perf_counter()
        for k, (name, image_path) in enumerate(todo, 1):
            frame = cv2.imread(str(image_path))
            if frame is None:
                raise SystemExit(f"evaluate_detector: cannot read {image_path}")
            t0 = time.perf_counter()
            boxes, scores = detector.detect(frame)
            found.ms[name] = (time.perf_counter() - t0) * 1000
            found.boxes[name], found.scores[name] = boxes, scores
            if k % 50 == 0 or k == len(todo):
                print(f"  {detector.name}: {k}/{len(todo)} images, {time.perf_counter() - started:.0f} s",
                      file=sys.stderr)
                save_cache(path, found, detector.key)
    return found


# ----------------------------------------------------------------------------- scoring

@dataclass
class Score:
    ap: float
    recall: float
    precision: float
    faces: int  # ground-truth faces counted
    detections: int  # detections counted (not matched to an ignored face)


def score(found: Detections, gt: dict[str, GroundTruth], min_height: float = 0.0,
          ignore_invalid: bool = True) -> Score:
    """VOC-style AP, recall and precision of detections against ground truth.

    Faces flagged invalid, or under ``min_height`` px tall, are ignored: detections whose
    best-overlapping face is one of them count neither as true nor as false positives.
    """
    all_scores, all_labels = [], []  # label 1 TP, 0 FP, -1 ignored
    positives = 0
    for name, truth in gt.items():
        ignored = (truth.invalid & ignore_invalid) | ((truth.boxes[:, 3] - truth.boxes[:, 1]) < min_height)
        positives += int((~ignored).sum())
        scores = found.scores[name]
        order = np.argsort(-scores, kind="stable")
        boxes = found.boxes[name][order]
        labels = np.zeros(len(order), dtype=np.int8)
        if len(truth.boxes) and len(boxes):
            overlaps = iou_matrix(boxes, truth.boxes)
            claimed = np.zeros(len(truth.boxes), dtype=bool)
            for d in range(len(boxes)):
                j = int(np.argmax(overlaps[d]))
                if overlaps[d, j] >= IOU:
                    if ignored[j]:
                        labels[d] = -1
                    elif not claimed[j]:
                        claimed[j] = True
                        labels[d] = 1
        all_scores.append(scores[order])
        all_labels.append(labels)
    scores = np.concatenate(all_scores) if all_scores else np.empty(0)
    labels = np.concatenate(all_labels) if all_labels else np.empty(0, dtype=np.int8)
    keep = labels >= 0
    scores, labels = scores[keep], labels[keep]
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(labels[order] == 1)
    fp = np.cumsum(labels[order] == 0)
    recall = tp / max(positives, 1)
    precision = tp / np.maximum(tp + fp, 1)
    return Score(ap=voc_ap(recall, precision), recall=float(recall[-1]) if len(recall) else 0.0,
                 precision=float(precision[-1]) if len(precision) else 0.0,
                 faces=positives, detections=len(labels))


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """All-point interpolated AP (PASCAL VOC 2010+): area under the precision envelope."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


# ----------------------------------------------------------------------------- report

def agreement(found: Detections, ref: Detections) -> str:
    """Face-by-face comparison with the reference's detections on the same images."""
    same = matched = close = 0
    for name, ref_boxes in ref.boxes.items():
        boxes = found.boxes[name]
        same += len(boxes) == len(ref_boxes)
        if len(boxes) and len(ref_boxes):
            best = iou_matrix(ref_boxes, boxes).max(axis=1)
            matched += int((best >= IOU).sum())
            close += int((best >= 0.95).sum())
    total = sum(len(b) for b in ref.boxes.values())
    return (f"same face count on {same} of {len(ref.boxes)} images; of the reference's {total} faces, "
            f"{matched} found at IoU >= {IOU} and {close} at IoU >= 0.95")


@dataclass
class Row:
    name: str
    all: Score
    large: Score
    false_per_negative: float
    ms_per_image: float
    ap_invalid_counted: float  # AP all with faces flagged invalid counted as positives
    agreement: str = ""  # face by face against the reference


def table(rows: list[Row]) -> str:
    lines = ["| detector | AP all | AP >= 40 px | recall all | precision all | recall >= 40 px | "
             "precision >= 40 px | false detections / negative image | ms / WIDER image |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.name} | {r.all.ap:.3f} | {r.large.ap:.3f} | {r.all.recall:.3f} | {r.all.precision:.3f} | "
                     f"{r.large.recall:.3f} | {r.large.precision:.3f} | {r.false_per_negative:.2f} | "
                     f"{r.ms_per_image:.0f} |")
    return "\n".join(lines) + "\n"


def section(rows: list[Row], wider: int, faces: int, faces_large: int, negatives: int, command: str) -> str:
    text = [SECTION, "",
            f"`{command}` (with the reference: run it with the export venv's python, which has TensorFlow "
            f"and `mtcnn==1.0.0`; without them the reference row is left out).", "",
            f"{wider} images of the WIDER FACE validation subset in `../shared/data/widerface-val` "
            f"({faces} valid faces, {faces_large} of them at least {LARGE} px tall) and {negatives} photos without "
            f"a human face in `../shared/data/negatives`. Every detector runs as configured, minimum face "
            f"{MIN_FACE} px, thresholds 0.6 / 0.7 / 0.7 (the reference's own O-Net default of 0.8 is set to 0.7).",
            "",
            f"AP is PASCAL VOC all-point interpolated average precision at IoU {IOU}, from the scores of the "
            f"faces each detector returns; detections are matched best score first to the face they overlap "
            f"most; faces flagged `invalid` are ignored (a detection on one counts neither way), and for the "
            f">= {LARGE} px columns so are faces under {LARGE} px tall. Recall and precision are of everything "
            f"returned at the default thresholds.", "",
            table(rows).rstrip("\n"), ""]
    by_name = {r.name.split(" (")[0]: r for r in rows}
    ref = next((r for r in rows if r.name.startswith("reference")), None)
    if ref is not None:
        for r in rows:
            if r is not ref:
                text.append(f"- {r.name} minus the reference: AP all {100 * (r.all.ap - ref.all.ap):+.1f} points, "
                            f">= {LARGE} px {100 * (r.large.ap - ref.large.ap):+.1f} points; face by face "
                            f"(WIDER and negatives): {r.agreement}.")
    if "ours float32" in by_name and "ours int8" in by_name:
        f32, i8 = by_name["ours float32"], by_name["ours int8"]
        text.append(f"- int8 minus float32: AP all {100 * (i8.all.ap - f32.all.ap):+.1f} points, >= {LARGE} px "
                    f"{100 * (i8.large.ap - f32.large.ap):+.1f} points; recall all "
                    f"{100 * (i8.all.recall - f32.all.recall):+.1f} points.")
    text.append("- Counting the faces flagged `invalid` as positives instead of ignoring them gives AP all "
                + ", ".join(f"{r.ap_invalid_counted:.3f} ({r.name.split(' (')[0]})" for r in rows)
                + f" (>= {LARGE} px unchanged: no invalid face is that tall). The planning figures for the "
                  "reference were 0.420 / 0.807.")
    text.append(f"- Milliseconds: the detect call on a decoded image (WIDER images are 1024 px wide), ours with "
                f"2 threads on {runtime_name()}, the reference on TensorFlow's CPU defaults; this 2-core "
                f"{platform.machine()} machine, shared with other jobs while measured.")
    return "\n".join(text) + "\n"


def write_section(path: Path, body: str) -> None:
    """Add or replace the quality section of a Markdown file (created if absent)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("# Detector: MTCNN on TFLite\n\n" + body)
        return
    lines = path.read_text().splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == SECTION), None)
    if start is None:
        text = "".join(lines).rstrip("\n") + "\n\n" + body
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        after = "".join(lines[end:])
        text = "".join(lines[:start]) + body + ("\n" + after if after else "")
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="evaluation data folder holding widerface-val/ and negatives/ "
                                                  "(default: $EDGE_EVAL_DATA or ../shared/data beside the repository)")
    parser.add_argument("--markdown", type=Path, help="add or replace the quality section of this Markdown file")
    parser.add_argument("--no-reference", action="store_true", help="ours only, even where TensorFlow imports")
    parser.add_argument("--no-cascaded", action="store_true",
                        help="leave out our cascaded-pyramid rows (pyramid='cascaded': faster, not to the pixel)")
    parser.add_argument("--limit", type=int, help="only the first N WIDER images (quick checks)")
    parser.add_argument("--fresh", action="store_true", help="ignore cached detections (and overwrite them)")
    args = parser.parse_args(argv)

    data = args.data or default_data_dir()
    wider_dir, negatives_dir = data / "widerface-val", data / "negatives"
    missing = [str(p) for p in (wider_dir / GT_FILE, wider_dir / "images", negatives_dir) if not p.exists()]
    if missing:
        print(f"evaluate_detector: evaluation data missing: {', '.join(missing)} (set --data or EDGE_EVAL_DATA)",
              file=sys.stderr)
        return 2
    gt = read_wider_gt(wider_dir / GT_FILE)
    if args.limit:
        gt = dict(list(gt.items())[:args.limit])
    wider = [(f"wider/{name}", wider_dir / "images" / name) for name in gt]
    negatives = [(f"negatives/{p.name}", p) for p in sorted(negatives_dir.iterdir())
                 if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    absent = [str(p) for _, p in wider if not p.is_file()]
    if absent:
        print(f"evaluate_detector: {len(absent)} WIDER images missing, e.g. {absent[0]}", file=sys.stderr)
        return 2
    print(f"{len(wider)} WIDER images, {sum(len(t.boxes) for t in gt.values())} faces; "
          f"{len(negatives)} negatives; cache {CACHE_DIR}", file=sys.stderr)

    detectors = [ours("float32"), ours("int8")]
    if not args.no_cascaded:
        detectors += [ours("float32", "cascaded"), ours("int8", "cascaded")]
    if not args.no_reference:
        ref = reference()
        if ref is not None:
            detectors.append(ref)

    rows, runs = [], []
    for detector in detectors:
        found = run(detector, wider + negatives, args.fresh)
        runs.append(found)
        per_image = Detections({n[6:]: found.boxes[n] for n, _ in wider}, {n[6:]: found.scores[n] for n, _ in wider})
        rows.append(Row(detector.name, score(per_image, gt), score(per_image, gt, LARGE),
                        sum(len(found.scores[n]) for n, _ in negatives) / max(len(negatives), 1),
                        float(np.mean([found.ms[n] for n, _ in wider])),
                        score(per_image, gt, ignore_invalid=False).ap))
    if detectors[-1].name.startswith("reference"):
        for row, found in zip(rows[:-1], runs[:-1]):
            row.agreement = agreement(found, runs[-1])

    all_faces = score(Detections({n: np.empty((0, 4)) for n in gt}, {n: np.empty(0) for n in gt}), gt)
    large_faces = score(Detections({n: np.empty((0, 4)) for n in gt}, {n: np.empty(0) for n in gt}), gt, LARGE)
    command = "python scripts/evaluate_detector.py --markdown docs/detector.md"
    body = section(rows, len(wider), all_faces.faces, large_faces.faces, len(negatives), command)
    print(body)
    if args.markdown:
        write_section(args.markdown, body)
        print(f"wrote {SECTION[3:]!r} to {args.markdown}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
