"""End-to-end evaluation of the daemon on the shared videos: who do the events name, how fast, how much memory.

- ``stage_640x360.mp4`` with the stage people enrolled (Lin-Manuel Miranda, who is on stage,
  and Alex Lacamoire, who is not): every "recognized" event must name Lin-Manuel Miranda.
- ``street_1080p.mp4`` with an empty gallery: no "recognized" event at all.

Each video runs through the daemon itself (edge.commands.facerec.Daemon, in a fresh process so that
its memory is its own), once with every frame processed (throughput) and once paced at
the video's own frame rate as a camera would deliver it (frames dropped when the pipeline
is slower). Enrollment here is a minimal one (largest face of each photo through
FaceEncoder into a Gallery).

    python scripts/evaluate_daemon.py [--data ../shared/data]
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.config import config_from_dict  # noqa: E402
from edge.commands.facerec import Daemon  # noqa: E402
from edge.commands.demo import Recogniser  # noqa: E402
from edge.events import Event  # noqa: E402
from edge.recognition.gallery import Gallery, save  # noqa: E402
from edge.daemon.sinks import MemorySink, StdoutSink  # noqa: E402

ON_STAGE = "Lin Manuel Miranda"


def run_video(video: Path, gallery: Path, realtime: bool, threads: int) -> tuple[list[Event], dict[str, Any]]:
    """The events and the final status of the daemon playing ``video`` once, in a fresh process."""
    result = subprocess.run([sys.executable, __file__, "--run", str(video), str(gallery), str(int(realtime)),
                             "--threads", str(threads)], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"the daemon failed on {video}: {result.stderr.strip()[-300:]}")
    output = json.loads(result.stdout)
    events = [Event(**{k: v for k, v in e.items() if k not in ("time", "schema")}) for e in output["events"]]
    return events, output["status"]


def run_here(video: Path, gallery: Path, realtime: bool, threads: int) -> tuple[list[Event], dict[str, Any]]:
    """The events and the final status of the daemon playing ``video`` once, in this process."""
    config = config_from_dict({
        "device": {"name": "evaluation"},
        "camera": {"name": video.stem, "source": str(video), "realtime": realtime},
        "detector": {"threads": threads},
        "recognition": {"gallery": str(gallery), "threads": threads},
        "events": {"status_interval_s": 3600.0},
    }, "evaluate_daemon")
    collected = MemorySink()
    daemon = Daemon(config, extra_sinks=[collected], stdout=StdoutSink(io.StringIO()))
    if daemon.run() != 0:
        raise SystemExit(f"the daemon failed on {video}")
    return collected.events, daemon.final_status or {}


def describe(events: list[Event], status: dict[str, Any]) -> str:
    frames = status["frames"]
    latency = status["latency"]
    stages = ", ".join(f"{stage} {v['median_ms']:.1f}/{v['p95_ms']:.1f}" for stage, v in latency.items())
    lines = [f"  frames captured {frames['captured']}, processed {frames['processed']}, dropped {frames['dropped']}; "
             f"{status['fps']:.1f} fps; RSS {status['rss_mb']:.0f} MiB",
             f"  latency ms median/p95: {stages}",
             f"  faces seen {status['faces']['seen']} (rejected by quality {status['faces']['rejected_by_quality']}); "
             f"events {status['events']}"]
    for event in events:
        who = event.name if event.kind == "recognized" else "-"
        lines.append(f"    {event.kind:10s} {who:20s} score {event.score:.3f} frames {event.frames} "
                     f"track {event.track_id} box {list(event.box)}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = Path(os.environ.get("EDGE_EVAL_DATA", Path(__file__).resolve().parent.parent.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=default_data, help="evaluation data folder (default %(default)s)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--run", nargs=3, metavar=("VIDEO", "GALLERY", "REALTIME"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        events, status = run_here(Path(args.run[0]), Path(args.run[1]), args.run[2] == "1", args.threads)
        print(json.dumps({"events": [e.to_dict() for e in events], "status": status}))
        return 0
    stage, street = args.data / "videos" / "stage_640x360.mp4", args.data / "videos" / "street_1080p.mp4"
    people = args.data / "faces-small" / "stage-people"
    missing = [str(p) for p in (stage, street, people) if not p.exists()]
    if missing:
        print(f"evaluate_daemon: missing evaluation data: {', '.join(missing)} (set --data or EDGE_EVAL_DATA)",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    recogniser = Recogniser(threads=args.threads)
    gallery = recogniser.enroll_folder(people)
    print(f"enrolled: {', '.join(f'{p.name} ({len(p.embeddings)} photos)' for p in gallery.people)}")
    failures = []
    with tempfile.TemporaryDirectory() as work:
        stage_gallery, empty_gallery = Path(work) / "stage.npz", Path(work) / "empty.npz"
        save(gallery, stage_gallery)
        save(Gallery(recogniser.encoder.identity), empty_gallery, allow_empty=True)
        for video, gallery_path, label in ((stage, stage_gallery, "stage people enrolled"),
                                           (street, empty_gallery, "empty gallery")):
            for realtime in (False, True):
                events, status = run_video(video, gallery_path, realtime, args.threads)
                mode = "paced at the video's frame rate" if realtime else "every frame"
                print(f"{video.name}, {label}, {mode}:")
                print(describe(events, status))
                named = {e.name for e in events if e.kind == "recognized"}
                if video == stage and named != {ON_STAGE}:
                    failures.append(f"{video.name} ({mode}): recognized {sorted(named)}, expected only {ON_STAGE}")
                if video == street and named:
                    failures.append(f"{video.name} ({mode}): recognized {sorted(named)} with nobody enrolled")
    for failure in failures:
        print(f"FAIL {failure}")
    print("all checks passed" if not failures else f"{len(failures)} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
