"""Time per photo of edge-enroll on this machine: the sample photos as they are, and as phone-size JPEGs.

Builds two temporary sources from the 5-celebrity photos (PyPI): the originals (~250x300 px)
and the same photos enlarged to 4032x3024-class JPEGs (quality 90, what a 12 MP phone writes),
runs ``edge-enroll --dry-run`` on each and prints its summary (ms per photo covers reading,
decoding, detection, alignment, quality and embedding; model loading is not included).

    python scripts/benchmark_enroll.py [--photos 40]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.runtime.sample_data import celebrity_dataset  # noqa: E402


def build(source: Path, count: int, phone: bool) -> int:
    """Copy (or enlarge) ``count`` sample photos into ``source/<person>/``; how many were written."""
    photos = sorted((celebrity_dataset() / "train").glob("*/*"))[:count]
    for path in photos:
        target = source / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not phone:
            shutil.copy(path, target)
            continue
        image = cv2.imread(str(path))
        factor = 4032 / max(image.shape[:2])
        image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(target), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return len(photos)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=40)
    args = parser.parse_args()
    for phone in (False, True):
        with tempfile.TemporaryDirectory() as work:
            source = Path(work) / "stick"
            count = build(source, args.photos, phone)
            report = Path(work) / "report"
            subprocess.run([sys.executable, "-m", "edge.commands.enroll", str(source), "--dry-run", "--gallery",
                            str(Path(work) / "gallery.npz"), "--report-dir", str(report)],
                           check=False, capture_output=True)
            result = json.loads((report / "report.json").read_text())
            per_photo = [p["seconds"] for person in result["people"] for p in person["photos"]]
            per_photo.sort()
            kind = "phone-size 4032 px JPEGs" if phone else "sample photos as shipped"
            print(f"{kind}: {count} photos, {result['accepted']} accepted, mean {result['seconds_per_photo'] * 1000:.0f} ms "
                  f"per photo, median {per_photo[len(per_photo) // 2] * 1000:.0f} ms, run {result['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
