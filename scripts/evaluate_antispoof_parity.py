"""Parity of the shipped MiniFASNet TFLite files with the original PyTorch pipeline, on the evaluation set.

    python scripts/evaluate_antispoof_parity.py [--data-dir ../shared/data/antispoof] [--json out.json]

Needs numpy, OpenCV and LiteRT only (the package's own venv will do). For every image of
``labels.csv`` (1,043, research use only, read in place), the crop of each model is made from the
reference's own RetinaFace box ``ref_face_box_xywh`` exactly as the original pipeline makes it
(edge.vision.liveness.crop: box x crop scale, capped to fit, shifted back inside the image,
bilinear resize to 80x80, BGR raw 0..255), each shipped model (fp32 and int8) is run on it, and its
p(live) is compared with the reference's ``ref_v2_live`` / ``ref_v1se_live`` (rounded there to 1e-5).
The fused score is the mean of the two models' p(live), as upstream; APCER (spoofs accepted) and BPCER
(live refused) at fused score >= 0.5, and ROC AUC, are given per source folder and overall for the
reference, fp32 and int8. Also: the upstream reproduction check (MiniFASNetV2 p(live) 0.990223 on
image_T1.jpg, 0.001333 / 0.000639 on image_F1 / image_F2) and ms per crop at 1 and 2 threads.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from edge.runtime.interpreter import make_interpreter  # noqa: E402
from edge.runtime.model_files import load_manifest, read_verified  # noqa: E402
from liveness_metrics import error_rates, roc_auc  # noqa: E402
from parity_inputs import antispoof_crop, read_bgr  # noqa: E402
from tflite_graph import median_invoke_ms  # noqa: E402

MODELS = (("minifasnetv2", "ref_v2_live", "V2"), ("minifasnetv1se", "ref_v1se_live", "V1SE"))
TAGS = ("fp32", "int8")
THRESHOLD = 0.5
UPSTREAM_SAMPLES = {  # file below the data folder: MiniFASNetV2 p(live), from the models README
    "minivision-ai__Silent-Face-Anti-Spoofing/live/image_T1.jpg": 0.990223,
    "minivision-ai__Silent-Face-Anti-Spoofing/spoof/image_F1.jpg": 0.001333,
    "minivision-ai__Silent-Face-Anti-Spoofing/spoof/image_F2.jpg": 0.000639,
}
UPSTREAM_TOLERANCE = 2e-6  # the README gives 6 decimals


def data_dir(option: str | None) -> Path:
    """--data-dir, else $EDGE_EVAL_DATA/antispoof, else ../shared/data/antispoof."""
    if option:
        return Path(option)
    base = Path(os.environ.get("EDGE_EVAL_DATA", REPO.parent / "shared" / "data"))
    return base / "antispoof"


class Model:
    """One shipped file in a LiteRT interpreter (XNNPACK), batch 1: crop -> p of the 3 classes."""

    def __init__(self, content: bytes, threads: int) -> None:
        self.interpreter = make_interpreter(content, threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]

    def __call__(self, crop: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.input, np.ascontiguousarray(crop[None], dtype=np.float32))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output)[0].copy()

    def median_ms(self, crop: np.ndarray, runs: int) -> float:
        self(crop)
        return median_invoke_ms(self.interpreter, runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="the antispoof evaluation folder (labels.csv and the images)")
    parser.add_argument("--json", help="write every figure to this file as well")
    parser.add_argument("--runs", type=int, default=300, help="invokes per latency median (default 300)")
    args = parser.parse_args(argv)
    folder = data_dir(args.data_dir)
    labels = folder / "labels.csv"
    if not labels.is_file():
        print(f"antispoof evaluation set not found: {labels} (research data, not on a fresh machine; "
              "pass --data-dir or set EDGE_EVAL_DATA)", file=sys.stderr)
        return 2
    rows = list(csv.DictReader(labels.open(encoding="utf-8")))
    manifest = load_manifest()
    specs = {(name, tag): manifest.models[f"antispoof-{name}-{tag}"] for name, _, _ in MODELS for tag in TAGS}
    contents = {key: read_verified(spec) for key, spec in specs.items()}
    models = {key: Model(content, 2) for key, content in contents.items()}

    live = np.array([r["label"] == "live" for r in rows])
    sources = np.array([r["source"] for r in rows])
    ref = {name: np.array([float(r[column]) for r in rows]) for name, column, _ in MODELS}
    got = {key: np.empty(len(rows)) for key in models}
    jitter = {name: np.empty(len(rows)) for name, _, _ in MODELS}  # fp32 p(live) with the box 1 px to the right
    sample_crop = {}
    start = time.perf_counter()
    for i, row in enumerate(rows):
        image = read_bgr(folder / row["file"])
        box = tuple(int(v) for v in row["ref_face_box_xywh"].split())
        for name, _, _ in MODELS:
            crop = antispoof_crop(image, box, float(specs[(name, "fp32")].crop_scale))
            sample_crop.setdefault(name, crop)
            for tag in TAGS:
                got[(name, tag)][i] = models[(name, tag)](crop)[int(specs[(name, tag)].live_class)]
            moved = antispoof_crop(image, (box[0] + 1, *box[1:]), float(specs[(name, "fp32")].crop_scale))
            jitter[name][i] = models[(name, "fp32")](moved)[int(specs[(name, "fp32")].live_class)]
    elapsed = time.perf_counter() - start
    print(f"{len(rows)} images ({int(live.sum())} live / {int((~live).sum())} spoof), 4 models, {elapsed:.0f} s\n")

    report: dict = {"images": len(rows), "parity": {}, "upstream_check": {}, "rates": {}, "latency_ms": {}}
    print("p(live) against the original PyTorch pipeline (reference rounded to 1e-5):")
    print(f"  {'model':<16}{'max abs':>10}{'mean abs':>10}{'p99':>10}{'  worst image'}")
    for name, _, title in MODELS:
        for tag in TAGS:
            diff = np.abs(got[(name, tag)] - ref[name])
            worst = int(np.argmax(diff))
            report["parity"][f"{name}-{tag}"] = {"max": float(diff.max()), "mean": float(diff.mean()),
                                                 "p99": float(np.percentile(diff, 99)), "worst": rows[worst]["file"]}
            print(f"  {title + ' ' + tag:<16}{diff.max():>10.2e}{diff.mean():>10.2e}{np.percentile(diff, 99):>10.2e}"
                  f"  {rows[worst]['file']}")
    for name, _, title in MODELS:
        diff = np.abs(jitter[name] - got[(name, "fp32")])
        report["parity"][f"{name}-fp32-box-1px"] = {"max": float(diff.max()), "mean": float(diff.mean()),
                                                    "p99": float(np.percentile(diff, 99))}
        print(f"  {title + ' fp32, box':<16}{diff.max():>10.2e}{diff.mean():>10.2e}{np.percentile(diff, 99):>10.2e}"
              "  (the float model itself, face box moved 1 px right: the model's own sensitivity to the crop)")
    fused = {"ref": np.array([float(r["ref_live_score"]) for r in rows])}
    for tag in TAGS:
        fused[tag] = (got[("minifasnetv2", tag)] + got[("minifasnetv1se", tag)]) / 2
        diff = np.abs(fused[tag] - fused["ref"])
        flips = int(((fused[tag] >= THRESHOLD) != (fused["ref"] >= THRESHOLD)).sum())
        report["parity"][f"fused-{tag}"] = {"max": float(diff.max()), "mean": float(diff.mean()), "decisions_changed": flips}
        print(f"  {'fused ' + tag:<16}{diff.max():>10.2e}{diff.mean():>10.2e}{np.percentile(diff, 99):>10.2e}"
              f"  ({flips} decisions at {THRESHOLD} differ from the reference's)")

    print("\nUpstream reproduction check, MiniFASNetV2 p(live) (models README, 6 decimals):")
    failed = False
    index = {r["file"]: i for i, r in enumerate(rows)}
    for file, expected in UPSTREAM_SAMPLES.items():
        if file not in index:
            print(f"  {file}: not in labels.csv")
            failed = True
            continue
        values = {tag: float(got[("minifasnetv2", tag)][index[file]]) for tag in TAGS}
        ok = abs(values["fp32"] - expected) <= UPSTREAM_TOLERANCE
        failed |= not ok
        report["upstream_check"][file] = {"expected": expected, **values, "fp32_ok": ok}
        print(f"  {Path(file).name}: expected {expected:.6f}, fp32 {values['fp32']:.6f} "
              f"({'ok' if ok else 'MISMATCH'}), int8 {values['int8']:.6f}")

    print(f"\nFused score >= {THRESHOLD}: APCER (spoofs accepted) / BPCER (live refused) in %, ROC AUC")
    header = "".join(f"{k + ' APCER/BPCER':>20}{k + ' AUC':>10}" for k in fused)
    print(f"  {'source':<34}{'live/spoof':>11}{header}")
    groups = [(s, sources == s) for s in sorted(set(sources))] + [("all", np.ones(len(rows), bool))]
    for group, mask in groups:
        cells, entry = "", {"live": int(live[mask].sum()), "spoof": int((~live[mask]).sum())}
        for kind, scores in fused.items():
            apcer, bpcer = error_rates(scores[mask], live[mask], THRESHOLD)
            auc = roc_auc(scores[mask], live[mask])
            entry[kind] = {"apcer": apcer, "bpcer": bpcer, "auc": auc}
            cells += f"{apcer:>9.1f} /{bpcer:>6.1f}   {auc:>10.4f}"
        report["rates"][group] = entry
        print(f"  {group[:33]:<34}{entry['live']:>5}/{entry['spoof']:<5}{cells}")

    print(f"\nms per crop (median of {args.runs} invokes, best of 3 rounds; batch 1, XNNPACK):")
    for threads in (1, 2):
        runners = {key: Model(content, threads) for key, content in contents.items()}
        best = {key: float("inf") for key in runners}
        for _ in range(3):  # rounds alternate between the models to even out the machine's load
            for key, runner in runners.items():
                best[key] = min(best[key], runner.median_ms(sample_crop[key[0]], args.runs))
        for (name, tag), value in best.items():
            report["latency_ms"][f"{name}-{tag}-{threads}t"] = value
        print(f"  {threads} thread{'s' if threads > 1 else ' '}: " + "   ".join(
            f"{title} {tag} {best[(name, tag)]:.3f}" for name, _, title in MODELS for tag in TAGS))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
