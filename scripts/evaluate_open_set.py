"""Open-set identification on LFW by gallery size: how the stranger false-accept rate grows with
the number of enrolled people, and what the gallery-size-aware threshold does about it.

Data and cache as ``scripts/evaluate_lfw.py`` (run it first: this script reuses its cached
detections and embeddings). The split is the one of that script: people with at least 5 photos
enroll their first 3 and are probed with the rest; the 4,069 people with exactly one photo are
strangers.

The impostor tail (the cosine exceeded by a fraction p of single cross-identity pairs, for p
from 1e-2 down to 1e-7) is measured on the images of ``pairs.txt`` **without** any stranger,
so the strangers probed here took no part in calibrating it. For each gallery size G (random
draws of G known people), two thresholds are compared:

- fixed: the pair threshold at FAR 1e-3 (the manifest's ``match_threshold``);
- gallery-aware: the pair threshold at FAR p = target / N, N the number of enrolled embeddings
  (a stranger is accepted when any of the N comparisons passes; ``edge.recognition.matcher`` does this).

A second table varies the number of photos per person (k = 1, 3, 5, 10 of the 127 people with
at least 12 photos, probed with their 11th photo on) and compares ways of counting the
comparisons N: every enrolled photo (the matcher's), sqrt(k) per person, or one per person.

    python scripts/evaluate_open_set.py --markdown /tmp/open_set.md --json /tmp/open_set.json
    python scripts/evaluate_open_set.py --tail-only   # the tail to store in models/manifest.json
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate_lfw import (  # noqa: E402
    LFW_IMAGES, CropSource, detect_all, embed_config, impostor_thresholds, lfw_dir, list_people,
    open_set_split, person_of, read_pairs,
)
from edge.recognition.matcher import gallery_threshold  # noqa: E402
from edge.runtime.model_files import load_manifest  # noqa: E402

TAIL_FARS = [1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6, 3e-7]  # 3e-7: ~4 of ~12.7 million pairs
GALLERY_SIZES = [5, 10, 25, 100, 423]
PHOTO_COUNTS = [1, 3, 5, 10]
RICH_PHOTOS = 12  # people with at least this many photos enroll k <= 10 and are probed with the rest
COUNTING = {"every photo": lambda people, k: people * k, "sqrt(k) per person": lambda people, k: people * k ** 0.5,
            "one per person": lambda people, k: people}
TARGET = 1e-3


@dataclass
class SizeResult:
    people: int
    draws: int
    rule: str  # best-of-3 or centroid
    threshold_rule: str  # fixed or gallery-aware
    threshold: float  # mean over draws
    rank1: float
    accepted_correct: float
    stranger_false_accepts: float
    strangers_accepted: int
    stranger_trials: int


@dataclass
class Tally:
    """Counts of one table row, summed over its draws."""

    rank1: int = 0
    accepted: int = 0
    probes: int = 0
    strangers_accepted: int = 0
    strangers: int = 0

    def add(self, probe_scores: np.ndarray, truth: np.ndarray, stranger_scores: np.ndarray, threshold: float) -> None:
        """One draw: person scores (M, G) of the probes with their true index, and of the strangers."""
        right = probe_scores.argmax(axis=1) == truth
        self.rank1 += int(right.sum())
        self.accepted += int(np.sum(right & (probe_scores.max(axis=1) >= threshold)))
        self.probes += len(truth)
        self.strangers_accepted += int(np.sum(stranger_scores.max(axis=1) >= threshold))
        self.strangers += len(stranger_scores)

    def result(self, people: int, draws: int, rule: str, threshold_rule: str, threshold: float) -> SizeResult:
        """The row, printed to stderr as it is made."""
        r = SizeResult(people, draws, rule, threshold_rule, threshold, self.rank1 / self.probes,
                       self.accepted / self.probes, self.strangers_accepted / self.strangers,
                       self.strangers_accepted, self.strangers)
        print(f"G={people:3d} {rule:9s} {threshold_rule:13s} ({draws} draws) thr {threshold:.3f}: rank-1 "
              f"{100 * r.rank1:.2f}% accepted {100 * r.accepted_correct:.2f}% strangers "
              f"{100 * r.stranger_false_accepts:.3f}% ({r.strangers_accepted}/{r.stranger_trials})", file=sys.stderr)
        return r


def scores(vectors: np.ndarray, enrolled: np.ndarray, rule: str) -> np.ndarray:
    """(M, G) person scores of probe vectors against enrolled (G, 3, D)."""
    if rule == "centroid":
        centres = enrolled.mean(axis=1)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        return vectors @ centres.T
    return (vectors @ enrolled.reshape(-1, enrolled.shape[-1]).T).reshape(len(vectors), len(enrolled), 3).max(axis=2)


def random_photos(vectors: dict[str, np.ndarray], known: list[list[str]], strangers: np.ndarray, threshold: float,
                  rng: np.random.Generator, draws: int) -> SizeResult:
    """Every known person enrolled with 3 photos drawn at random (the split's first 3 by file name
    are one such draw), probed with their others; best-of-3 at ``threshold``, totals over draws."""
    tally = Tally()
    for _ in range(draws):
        picks = [rng.permutation(len(photos)) for photos in known]
        enrolled = np.stack([[vectors[known[i][j]] for j in pick[:3]] for i, pick in enumerate(picks)])
        probes = np.stack([vectors[known[i][j]] for i, pick in enumerate(picks) for j in pick[3:]])
        truth = np.concatenate([np.full(len(pick) - 3, i) for i, pick in enumerate(picks)])
        tally.add(scores(probes, enrolled, "best-of-3"), truth, scores(strangers, enrolled, "best-of-3"), threshold)
    return tally.result(len(known), draws, "best-of-3, random photos", "gallery-aware", threshold)


def photos_per_person(vectors: dict[str, np.ndarray], rich: list[list[str]], strangers: np.ndarray,
                      tail: list[list[float]], rng: np.random.Generator, draws: int) -> list[dict]:
    """Accepted known probes and stranger false accepts by photos per person and comparison counting."""
    rows = []
    for size in (5, 25, 100):
        for k in PHOTO_COUNTS:
            for counting, count in COUNTING.items():
                threshold = gallery_threshold(tail, max(1, round(count(size, k))), TARGET)
                accepted = probes = hits = trials = 0
                for _ in range(draws if size < 100 else max(1, draws // 4)):
                    chosen = rng.choice(len(rich), size, replace=False)
                    gallery = np.stack([vectors[n] for c in chosen for n in rich[c][:k]])
                    pairs = [(i, n) for i, c in enumerate(chosen) for n in rich[c][10:]]
                    truth = np.array([i for i, _ in pairs])
                    best = (np.stack([vectors[n] for _, n in pairs]) @ gallery.T).reshape(len(pairs), size, k).max(2)
                    accepted += int(np.sum((best.argmax(1) == truth) & (best.max(1) >= threshold)))
                    probes += len(pairs)
                    hits += int(np.sum((strangers @ gallery.T).max(axis=1) >= threshold))
                    trials += len(strangers)
                rows.append({"people": size, "photos": k, "counting": counting, "threshold": threshold,
                             "accepted_correct": accepted / probes, "stranger_false_accepts": hits / trials})
                print(f"G={size} k={k} {counting}: thr {threshold:.3f} accepted {100 * accepted / probes:.1f}% "
                      f"strangers {100 * hits / trials:.3f}%", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="evaluation data folder holding lfw/")
    parser.add_argument("--model", help="embedder (default: the manifest's default)")
    parser.add_argument("--detector-quantization", choices=("auto", "int8", "float32"), default="auto",
                        help="the MTCNN models (default: what the daemon picks on this machine; int8 is ARM's)")
    parser.add_argument("--draws", type=int, default=20, help="random galleries per size (one at the full size)")
    parser.add_argument("--tail-only", action="store_true", help="print the impostor tail as manifest JSON and stop")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    lfw = lfw_dir(args.data)
    if lfw is None:
        print("evaluate_open_set: no LFW found (set --data or EDGE_EVAL_DATA)", file=sys.stderr)
        return 2
    manifest = load_manifest()
    spec = manifest.embedder(args.model)
    images = lfw / LFW_IMAGES
    people = list_people(images)
    split = open_set_split(people, None)
    stranger_set = set(split.strangers + split.not_strangers)  # single-photo people take no part in the tail
    pairs = read_pairs(lfw / "pairs.txt")
    tail_images = [n for n in dict.fromkeys(x for p in pairs for x in (p.first, p.second)) if n not in stranger_set]
    rich = [photos for photos in people.values() if len(photos) >= RICH_PHOTOS]
    names = tail_images if args.tail_only else list(dict.fromkeys(
        tail_images + [n for e in split.enrolled for n in e] + split.probes + split.strangers
        + [n for photos in rich for n in photos]))
    detections = detect_all(names, images, manifest, args.detector_quantization)
    faces, _ = detections.faces()
    emb = embed_config(spec, None, spec.alignment, names, CropSource(images, names, faces))
    vectors = dict(zip(names, emb.vectors(spec.flip_fusion)))

    identities = np.unique([person_of(n) for n in tail_images], return_inverse=True)[1]
    tail, pair_count = impostor_thresholds(np.stack([vectors[n] for n in tail_images]), identities, TAIL_FARS)
    tail_table = [[far, round(t, 4)] for far, t in zip(TAIL_FARS, tail)]
    print(f"impostor tail of {spec.name} ({pair_count:,} cross-identity pairs among {len(tail_images)} images, "
          f"no strangers): {json.dumps(tail_table)}", file=sys.stderr)
    if args.tail_only:
        print(json.dumps(tail_table))
        return 0
    fixed = dict(tail_table)[1e-3]

    enrolled_all = np.stack([[vectors[n] for n in e] for e in split.enrolled])  # (P, 3, D)
    probe_vectors = np.stack([vectors[n] for n in split.probes])
    stranger_vectors = np.stack([vectors[n] for n in split.strangers])
    rng = np.random.default_rng(0)
    results: list[SizeResult] = []
    for size in GALLERY_SIZES:
        draws = 1 if size >= len(enrolled_all) else args.draws
        for rule in ("best-of-3", "centroid"):
            comparisons = size * (3 if rule == "best-of-3" else 1)
            aware = gallery_threshold(tail_table, comparisons, TARGET)
            for threshold_rule, threshold in (("fixed", fixed), ("gallery-aware", aware)):
                tally = Tally()
                for _ in range(draws):
                    chosen = np.sort(rng.choice(len(enrolled_all), size, replace=False))
                    mask = np.isin(split.probe_identity, chosen)
                    truth = np.searchsorted(chosen, split.probe_identity[mask])
                    tally.add(scores(probe_vectors[mask], enrolled_all[chosen], rule), truth,
                              scores(stranger_vectors, enrolled_all[chosen], rule), threshold)
                results.append(tally.result(size, draws, rule, threshold_rule, threshold))

    known = [photos for photos in people.values() if len(photos) >= 5]
    results.append(random_photos(vectors, known, stranger_vectors,
                                 gallery_threshold(tail_table, 3 * len(known), TARGET), rng, args.draws))

    per_photos = photos_per_person(vectors, rich, stranger_vectors, tail_table, rng, args.draws)

    lines = [f"Embedder {spec.name} ({spec.alignment} alignment). Impostor tail from {pair_count:,} cross-identity "
             f"pairs among {len(tail_images)} images of `pairs.txt` without any stranger. "
             f"Target stranger false-accept rate {TARGET:g}. {len(split.strangers)} strangers per draw "
             f"({len(split.not_strangers)} single-photo people left out who are known people under another "
             f"name: `NOT_STRANGERS` in evaluate_lfw.py).", "",
             "| enrolled people | draws | matching | threshold | cosine | rank-1 % | accepted correctly % | "
             "stranger false accepts % (count) |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.people} | {r.draws} | {r.rule} | {r.threshold_rule} | {r.threshold:.3f} | "
                     f"{100 * r.rank1:.2f} | {100 * r.accepted_correct:.2f} | "
                     f"{100 * r.stranger_false_accepts:.3f} ({r.strangers_accepted} of {r.stranger_trials:,}) |")
    lines += ["", f"Photos per person ({len(rich)} people with at least {RICH_PHOTOS} photos; probes: their "
              f"photos from the 11th on; {len(split.strangers)} strangers per draw):", "",
              "| enrolled people | photos each | comparisons counted | cosine | accepted correctly % | "
              "stranger false accepts % |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['people']} | {r['photos']} | {r['counting']} | {r['threshold']:.3f} | "
              f"{100 * r['accepted_correct']:.1f} | {100 * r['stranger_false_accepts']:.3f} |" for r in per_photos]
    table = "\n".join(lines) + "\n"
    print(table)
    if args.markdown:
        args.markdown.write_text(table)
    if args.json:
        args.json.write_text(json.dumps({"tail": tail_table, "results": [asdict(r) for r in results],
                                         "photos_per_person": per_photos}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
