"""What the daemon costs when nobody is there, and on the shared videos, with the motion gate off and on.

Each run is the daemon itself (edge.commands.facerec.Daemon, default configuration apart from the camera
and ``motion.enabled``) in a fresh process; the gate off and on are run one after the other for each
scene, and printed side by side:

- ``empty``: a still 640x480 door scene with no face (scripts/door_scene.py: opencv-doc's building.jpg,
  Gaussian sensor noise of 3 grey levels, a bank of 64 noise frames cycled), delivered at 30 fps as a
  camera does (an in-memory source: the camera's own decoding is not counted), for ``--seconds``;
- ``stage``: ``stage_640x360.mp4`` played at its frame rate (29.97 fps), stage people enrolled;
- ``street``: ``street_1080p.mp4`` played at its frame rate (25 fps), nobody enrolled.

Figures: cores busy = CPU seconds (user + system, every thread of the process) / wall seconds of the
run (models loaded before); frames processed; detection calls per processed frame and why (the status's
``detection``); median motion and detect milliseconds.

    python scripts/benchmark_idle.py [--data ../shared/data] [--scenes empty stage street] [--seconds 30]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from daemon_runs import (add_arguments, enroll_stage_people, quiet_daemon, run_fresh, save_empty_gallery,  # noqa: E402
                         shared_inputs, timed_run, video_config)
from door_scene import FPS, background, noise_bank  # noqa: E402
from edge.daemon.capture import CaptureThread  # noqa: E402

SCENES = ("empty", "stage", "street")
BANK = 64  # noise frames made once and cycled


class StillScene:
    """A FrameSource: noisy frames of a still scene at ``fps``, paced like a camera, for ``seconds``."""

    def __init__(self, frames: list[np.ndarray], fps: float, seconds: float) -> None:
        self.name = "still door scene"
        self._frames = frames
        self._period = 1.0 / fps
        self._count = round(seconds * fps)
        self._delivered = 0
        self._next = 0.0

    def open(self) -> None:
        self._delivered, self._next = 0, time.monotonic()

    def read(self) -> np.ndarray | None:
        if self._delivered >= self._count:
            return None
        delay = self._next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._next += self._period
        frame = self._frames[self._delivered % len(self._frames)]
        self._delivered += 1
        return frame

    def close(self) -> None:
        pass


def run_here(spec: dict[str, Any]) -> dict[str, Any]:
    """One run in this process: cores busy, frames, detection calls."""
    video = Path(spec["video"]) if spec["scene"] != "empty" else Path("0")  # a camera index, never opened: replaced
    daemon, _ = quiet_daemon(video_config(video, Path(spec["gallery"]), True, spec["threads"], motion=spec["motion"],
                                          device="benchmark"))
    if spec["scene"] == "empty":
        scene, _ = background()
        daemon.capture = CaptureThread(StillScene(noise_bank(scene, BANK), FPS, spec["seconds"]))
    wall, cpu = timed_run(daemon, spec["scene"])
    status = daemon.final_status or {}
    return {"cores": round(cpu / wall, 4), "wall_s": round(wall, 1), "frames": status.get("frames", {}),
            "detection": status.get("detection", {}), "latency": status.get("latency", {})}


def row(scene: str, gate: str, figures: dict[str, Any]) -> str:
    """One line of the table."""
    frames = figures["frames"]
    processed = max(frames.get("processed", 0), 1)
    detection = figures["detection"]
    reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(detection.get("by_reason", {}).items()))
    latency = figures["latency"]
    motion = latency.get("motion", {}).get("median_ms", "")
    detect = latency.get("detect", {}).get("median_ms", "")
    return (f"| {scene} | {gate} | {figures['cores']:.3f} | {frames.get('processed', 0)} of {frames.get('captured', 0)} "
            f"| {detection.get('calls', 0) / processed:.3f} | {motion} | {detect} | {reasons} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.add_argument("--scenes", nargs="+", choices=SCENES, default=list(SCENES))
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the empty scene (default %(default)s)")
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_here(json.loads(args.run))))
        return 0
    stage, street, people, missing = shared_inputs(args.data)
    if set(args.scenes) - {"empty"} and missing:
        print(f"benchmark_idle: missing evaluation data: {', '.join(missing)} (set --data or EDGE_EVAL_DATA, "
              "or --scenes empty)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print(f"load average {os.getloadavg()[0]:.2f} before the runs; empty scene: {background()[1]}")
    print("| scene | motion gate | cores busy | frames processed of captured | detection calls per frame "
          "| motion ms | detect ms | searched because |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        empty = save_empty_gallery(Path(work) / "empty.npz")
        stage_people = empty
        if "stage" in args.scenes:
            stage_people = Path(work) / "stage.npz"
            enroll_stage_people(people, stage_people, args.threads)
        inputs = {"empty": (Path(), empty), "stage": (stage, stage_people), "street": (street, empty)}
        for scene in args.scenes:
            video, gallery = inputs[scene]
            for gated in (False, True):
                spec = {"scene": scene, "video": str(video), "gallery": str(gallery), "motion": gated,
                        "threads": args.threads, "seconds": args.seconds}
                print(row(scene, "on" if gated else "off", run_fresh(__file__, spec)))
                sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
