"""Operator figures: frames, per-stage latency (median, p95), faces, events, memory, camera state."""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from typing import Any

import numpy as np

STAGES = ("motion", "detect", "quality", "embed", "match", "liveness", "track", "total")
LATENCY_WINDOW = 500  # latency figures are over the last this many frames


def rss_mb() -> float:
    """Resident memory of this process in MiB (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as stream:
            return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


class PipelineStats:
    """Counters and latency windows the worker updates and the daemon reports."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self.frames_processed = 0
        self.frames_failed = 0  # frames whose processing raised (skipped; see edge/daemon/pipeline.py)
        self.faces = 0
        self.faces_rejected = 0
        self.faces_embedded = 0
        self.events: dict[str, int] = {"recognized": 0, "unknown": 0}
        self.searches: dict[str, int] = {}  # frames by why the detector ran on them (or "skipped": it did not)
        self._latency: dict[str, deque] = {stage: deque(maxlen=LATENCY_WINDOW) for stage in STAGES}

    def frame_done(self, timings_ms: dict[str, float], faces: int, rejected: int, embedded: int = 0) -> None:
        """Record one processed frame: its stage timings, faces found, faces the quality gate rejected
        and faces embedded."""
        with self._lock:
            self.frames_processed += 1
            self.faces += faces
            self.faces_rejected += rejected
            self.faces_embedded += embedded
            for stage, value in timings_ms.items():
                self._latency[stage].append(value)

    def searched(self, reason: str) -> None:
        """Count one frame by why the detector ran on it: ``ungated`` (no motion gate), ``tracking``,
        ``motion``, ``region``, ``keepalive``, or ``skipped`` when it did not run."""
        with self._lock:
            self.searches[reason] = self.searches.get(reason, 0) + 1

    def frame_failed(self) -> None:
        """Count one frame the pipeline could not process."""
        with self._lock:
            self.frames_failed += 1

    def event(self, kind: str) -> None:
        """Count one emitted event."""
        with self._lock:
            self.events[kind] = self.events.get(kind, 0) + 1

    def latency(self) -> dict[str, dict[str, float]]:
        """Median and 95th percentile milliseconds per stage."""
        with self._lock:
            windows = {stage: np.asarray(values) for stage, values in self._latency.items() if values}
        return {stage: {"median_ms": round(float(np.median(v)), 2), "p95_ms": round(float(np.percentile(v, 95)), 2)}
                for stage, v in windows.items()}

    def snapshot(self, captured: int, dropped: int, camera_state: str, present: list[str],
                 state: str = "ok") -> dict[str, Any]:
        """Everything for the log and the sinks' publish_status; ``state`` is the process's health."""
        uptime = time.monotonic() - self.started
        with self._lock:
            processed, faces, rejected, embedded = self.frames_processed, self.faces, self.faces_rejected, self.faces_embedded
            failed = self.frames_failed
            events = dict(self.events)
            searches = dict(self.searches)
        return {
            "state": state,
            "uptime_s": round(uptime, 1),
            "camera": camera_state,
            "frames": {"captured": captured, "processed": processed, "dropped": dropped, "failed": failed},
            "fps": round(processed / uptime, 2) if uptime > 0 else 0.0,
            "latency": self.latency(),
            "detection": {"calls": sum(n for reason, n in searches.items() if reason != "skipped"),
                          "skipped": searches.get("skipped", 0), "by_reason": searches},
            "faces": {"seen": faces, "rejected_by_quality": rejected, "embedded": embedded},
            "events": events,
            "present": present,
            "rss_mb": round(rss_mb(), 1),
        }
