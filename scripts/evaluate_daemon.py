"""End-to-end evaluation of the daemon on the shared videos: who do the events name, how fast, how much memory.

- ``stage_640x360.mp4`` with the stage people enrolled (Lin-Manuel Miranda, who is on stage,
  and Alex Lacamoire, who is not): every "recognized" event must name Lin-Manuel Miranda.
- ``street_1080p.mp4`` with an empty gallery: no "recognized" event at all.

Each video runs through the daemon itself (edge.commands.facerec.Daemon, in a fresh process so that
its memory is its own), once with every frame processed (throughput) and once paced at
the video's own frame rate as a camera would deliver it (frames dropped when the pipeline
is slower). The stage people are enrolled as edge-enroll enrolls them.

    python scripts/evaluate_daemon.py [--data ../shared/data]
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from daemon_runs import (add_arguments, enroll_stage_people, missing_data, quiet_daemon, run_fresh,  # noqa: E402
                         save_empty_gallery, shared_inputs, video_config)
from edge.events import Event  # noqa: E402

ON_STAGE = "Lin Manuel Miranda"


def run_here(spec: dict[str, Any]) -> dict[str, Any]:
    """The events and the final status of the daemon playing ``spec["video"]`` once, in this process."""
    video = Path(spec["video"])
    daemon, collected = quiet_daemon(video_config(video, Path(spec["gallery"]), spec["realtime"], spec["threads"]))
    if daemon.run() != 0:
        raise SystemExit(f"the daemon failed on {video}")
    return {"events": [e.to_dict() for e in collected.events], "status": daemon.final_status or {}}


def run_video(video: Path, gallery: Path, realtime: bool, threads: int) -> tuple[list[Event], dict[str, Any]]:
    """The events and the final status of the daemon playing ``video`` once, in a fresh process."""
    output = run_fresh(__file__, {"video": str(video), "gallery": str(gallery), "realtime": realtime,
                                  "threads": threads})
    events = [Event(**{k: v for k, v in e.items() if k not in ("time", "schema")}) for e in output["events"]]
    return events, output["status"]


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
    add_arguments(parser)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_here(json.loads(args.run))))
        return 0
    stage, street, people, missing = shared_inputs(args.data)
    if missing_data("evaluate_daemon", missing):
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    failures = []
    with tempfile.TemporaryDirectory() as work:
        stage_gallery, empty_gallery = Path(work) / "stage.npz", save_empty_gallery(Path(work) / "empty.npz")
        print(f"enrolled as edge-enroll does: {', '.join(enroll_stage_people(people, stage_gallery, args.threads))}")
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
