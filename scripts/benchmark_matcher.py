"""Open-set matching speed: milliseconds to match faces against galleries of growing size.

Builds galleries of unit embeddings (random: the cost does not depend on the values) with
``--photos`` per person, and times ``Matcher.match`` for 1 and 8 faces at once (a door
camera matches one to a few faces per frame): median and p90 over ``--runs`` calls, plus
the one-off cost of building the matcher (on start-up and after each gallery reload).

    python scripts/benchmark_matcher.py [--runs 200] [--size 512]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.recognition.gallery import Gallery, Person
from edge.runtime.model_files import EmbedderIdentity
from edge.recognition.matcher import Matcher

EMBEDDINGS = [100, 1_000, 10_000, 50_000]
FACES = [1, 8]


def unit_rows(rng: np.random.Generator, count: int, size: int) -> np.ndarray:
    """``count`` random unit vectors of length ``size``, float32."""
    rows = rng.standard_normal((count, size)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def make_gallery(identity: EmbedderIdentity, embeddings: int, photos: int, rng: np.random.Generator) -> Gallery:
    """A gallery of ``embeddings`` rows, ``photos`` per person (built whole: ``Gallery.add`` looks each name up)."""
    rows = unit_rows(rng, embeddings, identity.embedding_size)
    return Gallery(identity, [Person(f"p-{start}", f"person {start // photos}", rows[start:start + photos],
                                     [f"photo {i}" for i in range(len(rows[start:start + photos]))])
                              for start in range(0, embeddings, photos)])


def median_p90(samples: list[float]) -> tuple[float, float]:
    """Median and 90th percentile."""
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.9 * (len(ordered) - 1))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200, help="timed match calls per row")
    parser.add_argument("--size", type=int, default=512, help="embedding length (the default model's is 512)")
    parser.add_argument("--photos", type=int, default=5, help="embeddings per person")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    identity = EmbedderIdentity("benchmark", "0" * 64, args.size, "margin", False)
    print(f"{platform.machine()}, numpy {np.__version__}, {args.size}-D embeddings, {args.photos} per person, "
          f"{args.runs} calls per row\n")
    print("| enrolled embeddings | people | faces per call | match ms (median) | p90 | build matcher ms |")
    print("|---|---|---|---|---|---|")
    for count in EMBEDDINGS:
        gallery = make_gallery(identity, count, args.photos, rng)
        started = time.perf_counter()
        matcher = Matcher(gallery, identity, 0.6)
        build_ms = 1000 * (time.perf_counter() - started)
        for faces in FACES:
            probes = unit_rows(rng, faces, args.size)
            matcher.match(probes)  # warm-up
            samples = []
            for _ in range(args.runs):
                started = time.perf_counter()
                matcher.match(probes)
                samples.append(1000 * (time.perf_counter() - started))
            median, p90 = median_p90(samples)
            print(f"| {count:,} | {len(gallery.people):,} | {faces} | {median:.3f} | {p90:.3f} | {build_ms:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
