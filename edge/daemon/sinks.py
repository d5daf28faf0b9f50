"""Event sinks that need no network: JSON lines on stdout, and a fan-out to several sinks."""
from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

from ..events import EnrolledPerson, Event, EventSink, PresenceChange
from ..untrusted import dump_json

log = logging.getLogger(__name__)


class StdoutSink:
    """Prints each event and presence change as one JSON line, or as one readable line
    (``readable``); status goes to the log only."""

    def __init__(self, stream: TextIO | None = None, readable: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.readable = readable

    def people_changed(self, people: list[EnrolledPerson]) -> None:
        log.info("gallery: %d enrolled people", len(people))

    def publish_event(self, event: Event) -> None:
        if self.readable:
            who = event.name if event.kind == "recognized" else "unknown face"
            live = "" if event.liveness is None else (
                f", {'live' if event.liveness.live else 'NOT LIVE (photo or screen?)'} {event.liveness.score:.2f}")
            self._text(f"{event.to_dict()['time'][11:23]}  {event.kind:10s} {who:20s} score {event.score:.2f}{live}, "
                       f"{event.frames} frames, track {event.track_id}, box {list(event.box)}")
        else:
            self._line({"type": "event", **event.to_dict()})

    def publish_presence(self, change: PresenceChange) -> None:
        if self.readable:
            self._text(f"{change.to_dict()['time'][11:23]}  presence   {change.name:20s} "
                       f"{'present' if change.present else 'away'}")
        else:
            self._line({"type": "presence", **change.to_dict()})

    def publish_status(self, status: dict[str, Any]) -> None:
        pass  # the daemon logs status itself

    def close(self) -> None:
        self.stream.flush()

    def _line(self, payload: dict[str, Any]) -> None:
        self._text(dump_json(payload))

    def _text(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()


class FanOutSink:
    """Hands every value to each sink; one sink's error is logged and does not stop the others."""

    def __init__(self, sinks: list[EventSink]) -> None:
        self.sinks = sinks

    def _each(self, method: str, *args: Any) -> None:
        for sink in self.sinks:
            try:
                getattr(sink, method)(*args)
            except Exception:  # a sink's failure must not stop the camera; it is logged with its traceback
                log.exception("%s.%s failed", type(sink).__name__, method)

    def people_changed(self, people: list[EnrolledPerson]) -> None:
        self._each("people_changed", people)

    def publish_event(self, event: Event) -> None:
        self._each("publish_event", event)

    def publish_presence(self, change: PresenceChange) -> None:
        self._each("publish_presence", change)

    def publish_status(self, status: dict[str, Any]) -> None:
        self._each("publish_status", status)

    def close(self) -> None:
        self._each("close")


class MemorySink:
    """Keeps every event and presence change in lists (the demo's summary, evaluations, tests)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.presence: list[PresenceChange] = []
        self.people: list[EnrolledPerson] = []

    def people_changed(self, people: list[EnrolledPerson]) -> None:
        self.people = list(people)

    def publish_event(self, event: Event) -> None:
        self.events.append(event)

    def publish_presence(self, change: PresenceChange) -> None:
        self.presence.append(change)

    def publish_status(self, status: dict[str, Any]) -> None:
        pass  # not kept: the caller reads the daemon's final status

    def close(self) -> None:
        pass  # nothing buffered
