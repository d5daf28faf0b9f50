"""Liveness as the daemon runs it: our MTCNN boxes, the shipped MiniFASNet models, on the anti-spoofing set.

    python scripts/evaluate_liveness.py [--data ../shared/data] [--json out.json]

For every image of ``antispoof/labels.csv`` (1,043 webcam frames, research use only, read in place):
the daemon's detector (default configuration: quantization auto, min face 40 px) finds the faces,
the one that overlaps the reference's RetinaFace box best is the face evaluated (an image where
none overlaps it by IoU 0.3 counts as "no face": a spoof without a face cannot open a door, a live
person without one is refused), and :class:`edge.vision.liveness.LivenessChecker` scores it with
V2, V1SE and both, float32 and int8, with our box as it is, with the box mapping the manifest
declares, and with the mapping measured here. Printed:

- how our box differs from RetinaFace's (size ratios, centre offset: the measured mapping);
- per configuration: AUC, APCER / BPCER at the daemon's threshold, APCER at BPCER 5% and BPCER at
  APCER 1% (thresholds chosen on the whole set: optimistic, stated as such);
- per source at the chosen configuration, and with the score averaged over 3 consecutive frames of
  a source's live or spoof recording (what the daemon does over a track's frames);
- the spoofs scored most live at the chosen configuration, to look at;
- milliseconds per face (both models), 1 and 2 threads, float32 and int8.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from liveness_metrics import error_rates, roc_auc, threshold_for_apcer, threshold_for_bpcer  # noqa: E402
from edge.config import Config  # noqa: E402
from edge.face import Face  # noqa: E402
from edge.runtime.model_files import load_manifest  # noqa: E402
from edge.runtime.pinned_download import cache_dir  # noqa: E402
from edge.vision.detector import DetectorSettings, MTCNNDetector  # noqa: E402
from edge.vision.liveness import LivenessChecker, liveness_specs  # noqa: E402
from edge.vision.nms import iou_matrix  # noqa: E402

MODELS = {"V2": ("minifasnetv2",), "V1SE": ("minifasnetv1se",), "both": ("minifasnetv2", "minifasnetv1se")}
QUANTIZATIONS = ("float32", "int8")
MIN_IOU = 0.3
FUSED_FRAMES = 3  # the daemon's decision averages the agreeing frames of a track (events.needed, default 3)


def load_rows(data: Path) -> list[dict[str, str]]:
    labels = data / "antispoof" / "labels.csv"
    if not labels.is_file():
        raise SystemExit(f"evaluate_liveness: {labels} not found (research data, not on a fresh machine; "
                         "set --data or EDGE_EVAL_DATA)")
    return list(csv.DictReader(labels.open(encoding="utf-8")))


def detect_faces(rows: list[dict[str, str]], data: Path, quantization: str) -> list[Face | None]:
    """The detected face that overlaps each image's reference box best (None below IoU 0.3), cached."""
    config = Config()
    detector = MTCNNDetector(DetectorSettings(min_face_size=config.detector.min_face, quantization=quantization))
    cache = cache_dir() / "evaluate_liveness" / f"faces-{detector.quantization}-{config.detector.min_face}.json"
    if cache.exists():
        stored = json.loads(cache.read_text())
        return [Face(tuple(f["box"]), f["score"], np.array(f["landmarks"], np.float32)) if f else None
                for f in stored]
    chosen: list[Face | None] = []
    for row in rows:
        image = cv2.imread(str(data / "antispoof" / row["file"]))
        faces = detector.detect(image)
        x, y, w, h = (float(v) for v in row["ref_face_box_xywh"].split())
        best = None
        if faces:
            overlaps = iou_matrix(np.array([[x, y, x + w, y + h]]), np.array([f.box for f in faces]))[0]
            best = faces[int(np.argmax(overlaps))] if overlaps.max() >= MIN_IOU else None
        chosen.append(best)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps([{"box": list(f.box), "score": f.score, "landmarks": f.landmarks.tolist()} if f else None
                                 for f in chosen]))
    return chosen


def measured_mapping(rows: list[dict[str, str]], faces: list[Face | None]) -> tuple[float, float, float]:
    """The reference's RetinaFace box relative to ours, median over the faces: (width factor, height factor,
    downward shift of the centre in our box's heights), the ``box_mapping`` of the manifest."""
    ratios, dx, dy = [], [], []
    for row, face in zip(rows, faces):
        if face is None:
            continue
        x, y, w, h = (float(v) for v in row["ref_face_box_xywh"].split())
        ratios.append((w / face.width, h / face.height))
        dx.append((x + w / 2 - (face.box[0] + face.box[2]) / 2) / face.width)
        dy.append((y + h / 2 - (face.box[1] + face.box[3]) / 2) / face.height)
    r = np.array(ratios)
    print(f"reference box / ours (median, IQR): width x{np.median(r[:, 0]):.3f} ({np.percentile(r[:, 0], 25):.3f}-"
          f"{np.percentile(r[:, 0], 75):.3f}), height x{np.median(r[:, 1]):.3f} ({np.percentile(r[:, 1], 25):.3f}-"
          f"{np.percentile(r[:, 1], 75):.3f}); centre offset {np.median(dx):+.3f} w, {np.median(dy):+.3f} h")
    return round(float(np.median(r[:, 0])), 3), round(float(np.median(r[:, 1])), 3), round(float(np.median(dy)), 3)


def score_all(rows: list[dict[str, str]], data: Path, faces: list[Face | None],
              checkers: dict[str, LivenessChecker]) -> dict[str, np.ndarray]:
    """p(live) of every image per checker (0 where no face was found)."""
    scores = {name: np.zeros(len(rows), np.float32) for name in checkers}
    for index, (row, face) in enumerate(zip(rows, faces)):
        if face is None:
            continue
        image = cv2.imread(str(data / "antispoof" / row["file"]))
        for name, checker in checkers.items():
            scores[name][index] = checker.score(image, [face])[0]
    return scores


def fused_over_frames(scores: np.ndarray, rows: list[dict[str, str]], frames: int) -> np.ndarray:
    """Each image's score averaged with the next ``frames - 1`` of the same source and label, by file name
    (a recording's consecutive frames, as a track's agreeing frames in the daemon)."""
    fused = scores.copy()
    groups: dict[tuple[str, str], list[int]] = {}
    for index, row in enumerate(rows):
        groups.setdefault((row["source"], row["label"]), []).append(index)
    for indices in groups.values():
        indices.sort(key=lambda i: rows[i]["file"])
        for position, index in enumerate(indices):
            window = indices[position:position + frames] if position + frames <= len(indices) else indices[-frames:]
            fused[index] = scores[window].mean()
    return fused


def latency(checkers: dict[str, LivenessChecker], image: np.ndarray, face: Face, runs: int = 200) -> float:
    """Median milliseconds to score one face with every model of the checker."""
    checker = checkers["both"]
    checker.score(image, [face])
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        checker.score(image, [face])
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = Path(os.environ.get("EDGE_EVAL_DATA", Path(__file__).resolve().parent.parent.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=default_data, help="evaluation data folder (default %(default)s)")
    parser.add_argument("--detector-quantization", default="auto", choices=("auto", "float32", "int8"))
    parser.add_argument("--choose", default=None, help="configuration for the per-source tables, e.g. 'float32 both "
                                                       "manifest' (default: the daemon's liveness settings)")
    parser.add_argument("--threshold", type=float, help="decision threshold (default: the daemon's liveness.threshold)")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args()
    rows = load_rows(args.data)
    live = np.array([row["label"] == "live" for row in rows])
    sources = np.array([row["source"] for row in rows])
    faces = detect_faces(rows, args.data, args.detector_quantization)
    found = np.array([face is not None for face in faces])
    print(f"{len(rows)} images ({live.sum()} live, {(~live).sum()} spoof); our detector found the reference's face "
          f"in {found.sum()} ({(~found & live).sum()} live and {(~found & ~live).sum()} spoof images without it)")
    manifest = load_manifest()
    mappings = {"none": (1.0, 1.0, 0.0), "manifest": manifest.models["antispoof-minifasnetv2-fp32"].box_mapping,
                "measured": measured_mapping(rows, faces)}
    print(f"box mappings (width, height, shift): {mappings}")
    liveness = Config().liveness
    threshold = liveness.threshold if args.threshold is None else args.threshold
    report: dict = {"configurations": {}, "sources": {}, "latency_ms": {}}
    all_scores: dict[tuple[str, str, str], np.ndarray] = {}
    print(f"\nconfiguration                AUC   APCER/BPCER at {threshold:g}   APCER at BPCER 5%   BPCER at APCER 1%")
    for quantization in QUANTIZATIONS:
        for mapping_name, mapping in mappings.items():
            checkers = {name: LivenessChecker([dataclasses.replace(spec, box_mapping=mapping)
                                               for spec in liveness_specs(manifest, models, quantization)], 2)
                        for name, models in MODELS.items()}
            scores = score_all(rows, args.data, faces, checkers)
            for name, values in scores.items():
                all_scores[(quantization, name, mapping_name)] = values
                auc = roc_auc(values, live)
                apcer, bpcer = error_rates(values, live, threshold)
                at_b5 = error_rates(values, live, threshold_for_bpcer(values, live, 5.0))[0]
                at_a1 = error_rates(values, live, threshold_for_apcer(values, live, 1.0))[1]
                key = f"{quantization} {name} {mapping_name}"
                report["configurations"][key] = {"auc": auc, "apcer": apcer, "bpcer": bpcer,
                                                 "apcer_at_bpcer5": at_b5, "bpcer_at_apcer1": at_a1}
                print(f"{key:<26}{auc:>7.4f}{apcer:>10.1f} /{bpcer:>5.1f}{at_b5:>16.1f}{at_a1:>20.1f}")
    chosen = tuple(args.choose.split()) if args.choose else (
        liveness.quantization, "both" if len(liveness.models) == 2 else "V2" if "minifasnetv2" in liveness.models
        else "V1SE", "manifest")
    values = all_scores[chosen]
    fused = fused_over_frames(values, rows, FUSED_FRAMES)
    print(f"\nper source, {' '.join(chosen)} at threshold {threshold:g}: APCER / BPCER %, AUC; "
          f"then averaged over {FUSED_FRAMES} consecutive frames")
    for group in sorted(set(sources)) + ["all"]:
        mask = np.ones(len(rows), bool) if group == "all" else sources == group
        one = error_rates(values[mask], live[mask], threshold)
        many = error_rates(fused[mask], live[mask], threshold)
        auc = roc_auc(values[mask], live[mask])
        report["sources"][group] = {"apcer": one[0], "bpcer": one[1], "auc": auc, "fused_apcer": many[0],
                                    "fused_bpcer": many[1]}
        print(f"  {group[:40]:<41}{one[0]:>6.1f} /{one[1]:>5.1f}  {auc:.4f}   fused {many[0]:>5.1f} /{many[1]:>5.1f}")
    print(f"\nthreshold against errors, {' '.join(chosen)} (APCER / BPCER %; prints = NUAA, screens = the webcam sets)")
    screens = np.array(["NUAA" not in row["source"] and "minivision" not in row["source"] for row in rows])
    for candidate in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95):
        overall = error_rates(values, live, candidate)
        prints = error_rates(values[~screens], live[~screens], candidate)
        screen = error_rates(values[screens], live[screens], candidate)
        fused_all = error_rates(fused, live, candidate)
        report.setdefault("thresholds", {})[candidate] = {"all": overall, "prints": prints, "screens": screen,
                                                          "fused": fused_all}
        print(f"  {candidate:<5g} all {overall[0]:5.1f} / {overall[1]:5.1f}   prints {prints[0]:5.1f} / {prints[1]:5.1f}"
              f"   screens {screen[0]:5.1f} / {screen[1]:5.1f}   {FUSED_FRAMES} frames {fused_all[0]:5.1f} / {fused_all[1]:5.1f}")
    print("\nspoofs scored most live:")
    for index in np.argsort(-np.where(live, -1, values))[:12]:
        print(f"  {values[index]:.3f}  {rows[index]['file']}  ({rows[index]['attack']})")
    example = next(i for i, face in enumerate(faces) if face is not None)
    image = cv2.imread(str(args.data / "antispoof" / rows[example]["file"]))
    print("\nms per face, both models:")
    for quantization in QUANTIZATIONS:
        for threads in (1, 2):
            checkers = {"both": LivenessChecker(liveness_specs(manifest, MODELS["both"], quantization), threads)}
            ms = report["latency_ms"][f"{quantization}-{threads}t"] = latency(checkers, image, faces[example])
            print(f"  {quantization} {threads} thread{'s' if threads > 1 else ''}: {ms:.2f} ms")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
