"""Speed and memory of the daemon on the shared videos: fps, per-stage latency, CPU, memory, time to event.

Each run is the daemon itself (edge.commands.facerec.Daemon, default configuration apart from the
camera) in a fresh process, so that its memory and CPU time are its own:

- ``stage``: ``stage_640x360.mp4`` with the stage people enrolled (as edge-enroll does, like
  scripts/evaluate_daemon.py), every frame processed as fast as possible (``camera.realtime: false``);
- ``stage-paced``: the same clip played at its frame rate, as a camera delivers it;
- ``street``: ``street_1080p.mp4`` with an empty gallery, every frame;
- ``demo``: edge-demo's clip (a held-out photo of each of 5 sample people, 10 fps) played at its
  frame rate with their train photos enrolled (sample photos from PyPI, no shared data needed);
- ``memory``: the stage clip looped (``camera.loop: true``) for ``--frames`` frames (default
  10,000), RSS sampled every 500 frames.

Figures: frames per second (processed frames / wall time of the run, model loading
excluded), milliseconds per stage (median and p95 over every frame the stage ran on),
CPU seconds per frame (user + system time of the whole process, capture thread included,
over the run), peak memory (VmHWM, the peak RSS) and RSS at the end, and for every event the time
from the first frame of its track (the first frame the detector found that face in this
appearance) to the event: in frames, in video time, and in wall time from the capture of
that first frame to the event reaching the sink.

    python scripts/benchmark_daemon.py [--data ../shared/data] [--runs stage street ...] [--frames 10000]
    python scripts/benchmark_daemon.py --quantization float32   # the detector's fp32 models
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from daemon_runs import (add_arguments, enroll_stage_people, quiet_daemon, run_fresh, save_empty_gallery,  # noqa: E402
                         shared_inputs, timed_run, video_config)
from edge.commands.demo import demo_config, enroll_samples, make_clip, sample_shots  # noqa: E402
from edge.commands.facerec import Daemon  # noqa: E402
from edge.daemon.capture import Frame  # noqa: E402
from edge.daemon.status import STAGES, PipelineStats, rss_mb  # noqa: E402
from edge.events import Event  # noqa: E402
from edge.recognition.gallery import save  # noqa: E402
from edge.runtime.sample_data import celebrity_dataset  # noqa: E402

RUNS = ("stage", "stage-paced", "street", "demo", "memory")
RSS_EVERY = 500  # frames between RSS samples of the memory run


class RecordingStats(PipelineStats):
    """PipelineStats that also keeps every frame's timings, samples RSS and stops the daemon after a number of frames."""

    def __init__(self, daemon: Daemon, max_frames: int | None) -> None:
        super().__init__()
        self.daemon = daemon
        self.max_frames = max_frames
        # preallocated when the run's length is known, so that the bookkeeping does not grow the RSS it measures
        self._timings = np.full((max_frames or 0, len(STAGES)), np.nan, np.float32)
        self._timing_lists: dict[str, list[float]] = {stage: [] for stage in STAGES}
        self.rss_samples: list[tuple[int, float]] = []
        self.first_done: float | None = None
        self.last_done = 0.0

    def frame_done(self, timings_ms: dict[str, float], faces: int, rejected: int, embedded: int = 0) -> None:
        super().frame_done(timings_ms, faces, rejected, embedded)
        now = time.perf_counter()
        self.first_done = self.first_done or now
        self.last_done = now
        row = self.frames_processed - 1
        for stage, value in timings_ms.items():
            if row < len(self._timings):
                self._timings[row, STAGES.index(stage)] = value
            else:
                self._timing_lists[stage].append(value)
        if self.frames_processed % RSS_EVERY == 0:
            self.rss_samples.append((self.frames_processed, rss_mb()))
        if self.max_frames is not None and self.frames_processed >= self.max_frames:
            self.daemon.request_stop()

    def all_timings(self) -> dict[str, np.ndarray]:
        """Every recorded frame's milliseconds, per stage (only the frames the stage ran on)."""
        timings = {}
        for column, stage in enumerate(STAGES):
            values = self._timings[:, column]
            timings[stage] = np.concatenate([values[~np.isnan(values)], self._timing_lists[stage]])
        return timings


class EventTimes:
    """For each event: the frame and capture time of its track's first frame, and when it reached the sink."""

    def __init__(self, daemon: Daemon) -> None:
        self.pipeline = daemon.pipeline
        self.frame_numbers: dict[float, int] = {}
        self.records: list[dict[str, Any]] = []
        self._process = self.pipeline.process
        self.pipeline.process = self.process  # type: ignore[method-assign]

    def process(self, frame: Frame) -> list[Event]:
        self.frame_numbers[frame.timestamp] = frame.number
        events = self._process(frame)
        published = time.time()
        tracks = {track.id: track for track in self.pipeline.tracker.tracks}
        oldest = min((track.first_seen for track in tracks.values()), default=frame.timestamp)
        while self.frame_numbers and next(iter(self.frame_numbers)) < oldest:  # no live track starts there
            del self.frame_numbers[next(iter(self.frame_numbers))]
        for event in events:
            first_seen = tracks[event.track_id].first_seen
            self.records.append({"kind": event.kind, "name": event.name, "score": event.score, "track": event.track_id,
                                 "first_frame": self.frame_numbers[first_seen], "event_frame": frame.number,
                                 "wall_ms": round((published - first_seen) * 1000, 1)})
        return events


def peak_rss_mb() -> float:
    """Peak resident memory of this process's address space (VmHWM), MiB. Not ``ru_maxrss``: Linux carries
    that over from the parent across fork and exec, so a child started by a big parent reports the parent's."""
    with open("/proc/self/status") as stream:
        for line in stream:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_here(spec: dict[str, Any]) -> dict[str, Any]:
    """One run described by ``spec`` in this process: figures and events as plain values."""
    video = Path(spec["video"])
    daemon, _ = quiet_daemon(video_config(video, Path(spec["gallery"]), spec["realtime"], spec["threads"],
                                          spec["quantization"], spec["loop"], device="benchmark"))
    stats = daemon.stats = daemon.pipeline.stats = RecordingStats(daemon, spec.get("frames"))
    times = EventTimes(daemon)
    video_fps = cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FPS)
    wall, cpu = timed_run(daemon, str(video))
    processed = stats.frames_processed
    status = daemon.final_status or {}
    for record in times.records:
        frames = record["event_frame"] - record["first_frame"]
        record["frames"], record["video_ms"] = frames, round(frames / video_fps * 1000, 1)
    return {
        "video": video.name, "realtime": spec["realtime"], "detector": daemon.models["detector"],
        "frames": status.get("frames", {}), "processed": processed,
        "fps": round(processed / wall, 2), "wall_s": round(wall, 2),
        "cpu_s_per_frame": round(cpu / max(processed, 1), 4),
        "latency": {stage: {"median_ms": round(float(np.median(v)), 2), "p95_ms": round(float(np.percentile(v, 95)), 2),
                            "frames": len(v)} for stage, v in stats.all_timings().items() if len(v)},
        "peak_rss_mb": round(peak_rss_mb(), 1), "rss_mb": round(rss_mb(), 1),
        "rss_samples": stats.rss_samples, "faces": status.get("faces", {}), "events": times.records,
    }


def describe(label: str, figures: dict[str, Any]) -> str:
    """A few readable lines of one run's figures."""
    frames = figures["frames"]
    stages = ", ".join(f"{stage} {v['median_ms']:.1f}/{v['p95_ms']:.1f} ({v['frames']})"
                       for stage, v in figures["latency"].items())
    lines = [f"{label} ({figures['detector']}):",
             f"  {figures['processed']} frames processed ({frames.get('captured', 0)} captured, "
             f"{frames.get('dropped', 0)} dropped) in {figures['wall_s']:.1f} s: {figures['fps']:.1f} fps, "
             f"{figures['cpu_s_per_frame'] * 1000:.1f} ms CPU per frame",
             f"  ms median/p95 (frames): {stages}",
             f"  memory: peak {figures['peak_rss_mb']:.0f} MiB, RSS at the end {figures['rss_mb']:.0f} MiB; "
             f"faces {figures['faces']}"]
    for e in figures["events"]:
        who = e["name"] if e["kind"] == "recognized" else "-"
        lines.append(f"    {e['kind']:10s} {who:20s} score {e['score']:.3f} track {e['track']}: first frame "
                     f"{e['first_frame']}, event frame {e['event_frame']} (+{e['frames']} frames, {e['video_ms']:.0f} ms "
                     f"of video, {e['wall_ms']:.0f} ms wall)")
    return "\n".join(lines)


def describe_memory(figures: dict[str, Any]) -> str:
    """RSS over the looped run: first and last sample, and the slope of a line fitted to the samples."""
    samples = figures["rss_samples"]
    if len(samples) < 3:
        return "  too few RSS samples for a slope"
    frames, rss = np.array(samples, dtype=np.float64).T
    later = frames >= frames[1]  # the first sample includes the warm-up
    slope = np.polyfit(frames[later], rss[later], 1)[0] * 1000
    listing = " ".join(f"{r:.0f}" for r in rss)
    return (f"  RSS every {RSS_EVERY} frames (MiB): {listing}\n"
            f"  first {rss[0]:.1f}, last {rss[-1]:.1f}, max {rss.max():.1f} MiB; slope from frame {int(frames[1])}: "
            f"{slope:+.3f} MiB per 1000 frames")


def demo_files(work: Path) -> tuple[Path, Path]:
    """edge-demo's gallery (5 people's train photos) and clip (a held-out photo of each, a stranger)."""
    dataset = celebrity_dataset()
    gallery, clip = work / "demo.npz", work / "demo.mp4"
    save(enroll_samples(dataset, demo_config(clip, gallery))[0], gallery)
    shots, _ = sample_shots(dataset)
    return gallery, make_clip(shots, clip)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.add_argument("--runs", nargs="+", choices=RUNS, default=list(RUNS))
    parser.add_argument("--frames", type=int, default=10_000, help="frames of the looped memory run (default %(default)s)")
    parser.add_argument("--quantization", choices=("auto", "int8", "float32"), default="auto",
                        help="detector models (default auto: the daemon's default)")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_here(json.loads(args.run))))
        return 0
    stage, street, people, missing = shared_inputs(args.data)
    needs_shared = [run for run in args.runs if run != "demo"]
    if needs_shared and missing:
        print(f"benchmark_daemon: missing evaluation data: {', '.join(missing)} (set --data or EDGE_EVAL_DATA, "
              f"or --runs demo)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    load = os.getloadavg()[0]
    print(f"load average {load:.2f} before the runs{' (the machine is busy: figures will be noisy)' if load > 0.5 else ''}")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        empty = save_empty_gallery(work / "empty.npz")
        stage_people = work / "stage.npz" if needs_shared and set(args.runs) - {"street"} else empty
        if stage_people != empty:
            enroll_stage_people(people, stage_people, args.threads)
        demo_gallery, demo_clip = demo_files(work) if "demo" in args.runs else (empty, empty)
        base = {"threads": args.threads, "quantization": args.quantization, "loop": False}
        specs = {
            "stage": dict(base, video=str(stage), gallery=str(stage_people), realtime=False),
            "stage-paced": dict(base, video=str(stage), gallery=str(stage_people), realtime=True),
            "street": dict(base, video=str(street), gallery=str(empty), realtime=False),
            "demo": dict(base, video=str(demo_clip), gallery=str(demo_gallery), realtime=True),
            "memory": dict(base, video=str(stage), gallery=str(stage_people), realtime=False, loop=True,
                           frames=args.frames),
        }
        for run in args.runs:
            figures = results[run] = run_fresh(__file__, specs[run])
            print(describe(run, figures))
            if run == "memory":
                print(describe_memory(figures))
            sys.stdout.flush()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
