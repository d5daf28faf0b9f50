"""What the daemon tells the world: events, presence changes and status, as plain values.

Only a sink knows how they travel (stdout, MQTT); the pipeline hands them to an
:class:`EventSink` and never formats a message itself. The JSON form of each value is the
published schema, documented in ``docs/events.md``.
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, Protocol

SCHEMA_VERSION = 2
EVENT_KINDS = ("recognized", "unknown")


def now_iso(timestamp: float) -> str:
    """ISO 8601 local time with its zone offset, to the millisecond."""
    return datetime.fromtimestamp(timestamp, timezone.utc).astimezone().isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Liveness:
    """Whether the recognized face was a live person in front of the camera (not a photo or a screen)."""

    score: float  # mean p(live) of the liveness models over the frames that decided, in [0, 1]
    live: bool  # score >= liveness.threshold
    frames: int  # frames the score is the mean of


@dataclass(frozen=True)
class Event:
    """One decision about one appearance of a face: a known person, or an unknown face."""

    kind: Literal["recognized", "unknown"]
    device_id: str  # the slug of device.name: what subscribers compare (it is in the topics too)
    device: str  # device.name, for display
    camera: str
    person_id: str | None  # None for unknown faces
    name: str | None  # display name, any Unicode; None for unknown faces
    score: float  # in [0, 1], >= 0.5 exactly when the face matched (see edge.recognition.matcher)
    frames: int  # frames of this appearance that agreed on the decision
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in frame pixels, of the latest agreeing frame
    models: dict[str, str]  # {"detector": ..., "embedder": ...}
    track_id: int
    timestamp: float = field(default_factory=time.time)  # seconds since the epoch
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    snapshot_jpeg_base64: str | None = None  # only when the owner enables snapshots
    liveness: Liveness | None = None  # recognized events with liveness on; None for unknown faces

    def to_dict(self) -> dict[str, Any]:
        """The published JSON object (schema in docs/events.md)."""
        payload = asdict(self)
        payload["box"] = list(self.box)
        payload["time"] = now_iso(self.timestamp)
        payload["schema"] = SCHEMA_VERSION
        if self.snapshot_jpeg_base64 is None:
            del payload["snapshot_jpeg_base64"]
        return payload

    def to_json(self) -> str:
        """Compact UTF-8 JSON of :meth:`to_dict`, Unicode names unescaped; ValueError rather than NaN (not JSON)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True)
class PresenceChange:
    """A known person became present (recognized) or away (not seen for the configured time)."""

    person_id: str
    name: str
    present: bool
    device_id: str
    device: str
    timestamp: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """The published JSON object."""
        return {"person_id": self.person_id, "name": self.name, "state": "present" if self.present else "away",
                "device_id": self.device_id, "device": self.device, "time": now_iso(self.timestamp), "timestamp": self.timestamp,
                "schema": SCHEMA_VERSION}


@dataclass(frozen=True)
class EnrolledPerson:
    """Who is in the gallery, for sinks that announce per-person entities."""

    person_id: str
    name: str


class EventSink(Protocol):
    """Where the daemon's values go. Implementations must not block the pipeline for long."""

    def people_changed(self, people: list[EnrolledPerson]) -> None:
        """The gallery was (re)loaded: these are the enrolled people now."""

    def publish_event(self, event: Event) -> None:
        """A recognized or unknown event; must not be lost once accepted."""

    def publish_presence(self, change: PresenceChange) -> None:
        """A person's presence changed."""

    def publish_status(self, status: dict[str, Any]) -> None:
        """Periodic operator figures (frames, latency, memory...)."""

    def close(self) -> None:
        """Flush what is pending and release resources."""
