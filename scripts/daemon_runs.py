"""The daemon on a video, for the evaluation and benchmark scripts: one configuration, one way to
enroll the stage people, one way to run in a fresh process (so that memory and CPU time are the run's own).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.commands.demo import enroll_named  # noqa: E402
from edge.commands.facerec import Daemon  # noqa: E402
from edge.config import Config, config_from_dict  # noqa: E402
from edge.daemon.sinks import MemorySink, StdoutSink  # noqa: E402
from edge.recognition.gallery import Gallery, save  # noqa: E402
from edge.runtime.model_files import EmbedderIdentity, load_manifest  # noqa: E402


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--data (the evaluation data), --threads, and the hidden --run SPEC of a fresh process."""
    default_data = Path(os.environ.get("EDGE_EVAL_DATA", Path(__file__).resolve().parent.parent.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=default_data, help="evaluation data folder (default %(default)s)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--run", help=argparse.SUPPRESS)


def shared_inputs(data: Path) -> tuple[Path, Path, Path, list[str]]:
    """The stage clip, the street clip, the stage people's photos, and which of them are missing."""
    stage, street = data / "videos" / "stage_640x360.mp4", data / "videos" / "street_1080p.mp4"
    people = data / "faces-small" / "stage-people"
    return stage, street, people, [str(p) for p in (stage, street, people) if not p.exists()]


def video_config(video: Path, gallery: Path, realtime: bool, threads: int, quantization: str = "auto",
                 loop: bool = False, device: str = "evaluation", motion: bool = True) -> Config:
    """The daemon's default configuration but for the camera (``video``), the gallery, the threads and
    whether the motion gate is on."""
    return config_from_dict({
        "device": {"name": device},
        "camera": {"name": video.stem, "source": str(video), "realtime": realtime, "loop": loop},
        "detector": {"threads": threads, "quantization": quantization},
        "motion": {"enabled": motion},
        "recognition": {"gallery": str(gallery), "threads": threads},
        "events": {"status_interval_s": 3600.0},
    }, device)


def quiet_daemon(config: Config) -> tuple[Daemon, MemorySink]:
    """A daemon whose events are collected in memory (its stdout lines are discarded)."""
    collected = MemorySink()
    return Daemon(config, extra_sinks=[collected], stdout=StdoutSink(io.StringIO())), collected


def enroll_stage_people(people: Path, gallery: Path, threads: int) -> list[str]:
    """``people/<person>/<photos>`` enrolled as edge-enroll does, saved at ``gallery``; who and how many photos."""
    enrolled, _ = enroll_named(people, video_config(Path("unused.mp4"), gallery, False, threads))
    save(enrolled, gallery)
    return [f"{p.name} ({len(p.embeddings)} photos)" for p in enrolled.people]


def save_empty_gallery(gallery: Path) -> Path:
    """A gallery with nobody enrolled, for the default embedder, saved at ``gallery``."""
    save(Gallery(EmbedderIdentity.of(load_manifest().embedder())), gallery, allow_empty=True)
    return gallery


def timed_run(daemon: Daemon, what: str) -> tuple[float, float]:
    """Run ``daemon`` until its source ends: wall seconds, and CPU seconds (user + system, every thread of
    this process) meanwhile; SystemExit naming ``what`` when the daemon fails."""
    cpu_start, wall_start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    if daemon.run() != 0:
        raise SystemExit(f"the daemon failed on {what}")
    wall = time.perf_counter() - wall_start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return wall, (usage.ru_utime - cpu_start.ru_utime) + (usage.ru_stime - cpu_start.ru_stime)


def missing_data(script: str, missing: list[str]) -> bool:
    """Say on stderr which evaluation data ``script`` misses (when it does)."""
    if missing:
        print(f"{script}: missing evaluation data: {', '.join(missing)} (set --data or EDGE_EVAL_DATA)", file=sys.stderr)
    return bool(missing)


def run_fresh(script: str, spec: dict[str, Any]) -> dict[str, Any]:
    """``script --run SPEC`` in a fresh Python process; the JSON it prints."""
    result = subprocess.run([sys.executable, script, "--run", json.dumps(spec)], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"the run {spec} failed: {result.stderr.strip()[-500:]}")
    return json.loads(result.stdout)
