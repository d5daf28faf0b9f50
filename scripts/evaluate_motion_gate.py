"""Does the motion gate cost recognition? The daemon's pipeline on each video with the gate off and on, compared
frame by frame.

Every frame of the video goes through ``Pipeline.process`` (the daemon's worker, default configuration,
models as ``Daemon`` builds them) with its video time as the timestamp, so that both runs see the same
frames at the same times and track timeouts do not depend on the machine's speed. Printed: detection
calls per frame and why the gated run searched each frame; the process's CPU time per frame; the frames
whose reported faces differ (a face in one run with no face at IoU 0.5 in the other); every event of
each run (kind, name, score, the frame of its track's first face and the frame of the event) and the
events that differ.

    python scripts/evaluate_motion_gate.py [--data ../shared/data] [--videos stage street]
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from daemon_runs import (add_arguments, enroll_stage_people, missing_data, quiet_daemon,  # noqa: E402
                         save_empty_gallery, shared_inputs, video_config)
from edge.daemon.capture import Frame  # noqa: E402
from edge.face import Face  # noqa: E402
from edge.vision.nms import iou_matrix  # noqa: E402


@dataclass
class Run:
    """One pass over a video: per frame the faces reported and why the detector ran; the events."""

    faces: list[list[Face]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    regions: list[tuple[int, int, int, int] | None] = field(default_factory=list)
    events: list[tuple[int, int, str, str, float]] = field(default_factory=list)  # event frame, first frame, kind, name, score
    cpu_ms: float = 0.0  # CPU time of the process per frame (every thread), while the pipeline ran


def play(video: Path, gallery: Path, gated: bool, threads: int) -> Run:
    """The pipeline over every frame of ``video``, timestamps in video time."""
    daemon, _ = quiet_daemon(video_config(video, gallery, False, threads, motion=gated))
    pipeline = daemon.pipeline
    faces_seen: list[Face] = []
    finder = pipeline.gate or pipeline.detector
    finder_detect = finder.detect

    def recorded(*args: object) -> list[Face]:
        faces = finder_detect(*args)
        faces_seen[:] = faces
        return faces

    finder.detect = recorded  # type: ignore[method-assign]
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    run = Run()
    number = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        number += 1
        started = time.process_time()
        events = pipeline.process(Frame(image, number, number / fps))
        run.cpu_ms += (time.process_time() - started) * 1000
        run.faces.append(list(faces_seen))
        run.reasons.append(pipeline.gate.reason if pipeline.gate is not None else "ungated")
        run.regions.append(pipeline.gate.region if pipeline.gate is not None else None)
        tracks = {track.id: track for track in pipeline.tracker.tracks}
        for event in events:
            first = round(tracks[event.track_id].first_seen * fps)
            run.events.append((number, first, event.kind, event.name or "-", round(event.score, 3)))
    capture.release()
    daemon.sink.close()
    run.cpu_ms /= max(number, 1)
    return run


def unmatched(faces: list[Face], others: list[Face]) -> list[Face]:
    """The faces of ``faces`` that no face of ``others`` overlaps at IoU 0.5."""
    if not faces or not others:
        return list(faces)
    overlap = iou_matrix(np.array([f.box for f in faces], np.float64), np.array([f.box for f in others], np.float64))
    return [face for face, best in zip(faces, overlap.max(axis=1)) if best < 0.5]


def describe_box(face: Face) -> str:
    x1, y1, x2, y2 = face.box
    return f"[{x1:.0f},{y1:.0f},{x2:.0f},{y2:.0f}] {y2 - y1:.0f}px {face.score:.2f}"


def compare(name: str, plain: Run, gated: Run) -> int:
    """Print the comparison; the number of events that differ."""
    frames = len(plain.faces)
    reasons = Counter(gated.reasons)
    calls = frames - reasons.get("skipped", 0)
    print(f"{name}: {frames} frames; detection calls per frame: gate off 1.00, gate on {calls / frames:.2f} "
          f"({', '.join(f'{reason} {count}' for reason, count in sorted(reasons.items()))}); CPU ms per frame: "
          f"gate off {plain.cpu_ms:.1f}, gate on {gated.cpu_ms:.1f}")
    differing = 0
    for index, (a, b) in enumerate(zip(plain.faces, gated.faces)):
        only_plain, only_gated = unmatched(a, b), unmatched(b, a)
        if only_plain or only_gated:
            differing += 1
            region = gated.regions[index]
            print(f"  frame {index + 1} ({gated.reasons[index]}{f' {list(region)}' if region else ''}): "
                  f"gate off only {[describe_box(f) for f in only_plain]}, gate on only "
                  f"{[describe_box(f) for f in only_gated]}")
    print(f"  frames whose faces differ: {differing} of {frames}")
    for label, run in (("gate off", plain), ("gate on", gated)):
        print(f"  events, {label}:")
        for event_frame, first, kind, who, score in run.events:
            print(f"    frame {event_frame:4d} {kind:10s} {who:20s} {score:.3f} (track from frame {first})")
    differ = sorted(set(plain.events) ^ set(gated.events))
    print(f"  events that differ: {len(differ)}" + "".join(f"\n    {event}" for event in differ))
    return len(differ)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.add_argument("--videos", nargs="+", choices=("stage", "street"), default=["stage", "street"])
    args = parser.parse_args()
    stage, street, people, missing = shared_inputs(args.data)
    if missing_data("evaluate_motion_gate", missing):
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    differ = 0
    with tempfile.TemporaryDirectory() as work:
        empty = save_empty_gallery(Path(work) / "empty.npz")
        inputs = {"street": (street, empty)}
        if "stage" in args.videos:
            stage_gallery = Path(work) / "stage.npz"
            print(f"enrolled as edge-enroll does: {', '.join(enroll_stage_people(people, stage_gallery, args.threads))}")
            inputs["stage"] = (stage, stage_gallery)
        for name in args.videos:
            video, gallery = inputs[name]
            differ += compare(video.name, play(video, gallery, False, args.threads),
                              play(video, gallery, True, args.threads))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
