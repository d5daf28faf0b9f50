"""What this device has announced on the broker, kept next to the outbox (``outbox.people.json``).

The person ids whose presence (and Home Assistant entity) exist, so a person removed while the
daemon was stopped is removed at its next start; and whether Home Assistant discovery has gone out
device-based. A file written by edge-facerec 0.1 has no ``discovery`` key: its entities are
single-entity configs still to migrate (edge/mqtt/ha_migration.py). The file is written
atomically and owner-only.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..safe_read import read_regular_file
from ..untrusted import parse_json

DEVICE_DISCOVERY = "device"
MAX_FILE_BYTES = 1 << 20


@dataclass(frozen=True)
class Announced:
    """The contents of the file."""

    people: frozenset[str] = field(default_factory=frozenset)
    device_discovery: bool = True  # False: edge-facerec 0.1's single-entity configs may still be on the broker


class AnnouncedFile:
    """:class:`Announced` at ``path``, read once; :meth:`record` changes and writes it (from any thread)."""

    def __init__(self, path: Path, log: logging.Logger) -> None:
        self.path = path
        self._log = log
        self._lock = threading.Lock()
        self.current = self._load()

    def record(self, people: frozenset[str] | None = None, device_discovery: bool | None = None) -> None:
        """Change what is recorded (None: keep) and write the file (a warning when it cannot be written)."""
        with self._lock:
            self.current = replace(self.current, **{key: value for key, value in
                                                    (("people", people), ("device_discovery", device_discovery))
                                                    if value is not None})
            content: dict[str, object] = {"people": sorted(self.current.people)}
            if self.current.device_discovery:
                content["discovery"] = DEVICE_DISCOVERY
            temporary = self.path.with_name(self.path.name + ".tmp")
            try:
                descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
                    json.dump(content, stream)
                    stream.flush()
                    os.fsync(stream.fileno())
                os.replace(temporary, self.path)
            except OSError as error:
                self._log.warning("%s: cannot record the announced people (%s)", self.path, error)

    def _load(self) -> Announced:
        """What the file says; nothing announced (and nothing to migrate) when it does not exist."""
        try:
            raw = parse_json(read_regular_file(self.path, MAX_FILE_BYTES), MAX_FILE_BYTES)
            people = raw["people"]
            if not isinstance(people, list) or not all(isinstance(person, str) for person in people):
                raise ValueError("people is not a list of person ids")
            return Announced(frozenset(people), raw.get("discovery") == DEVICE_DISCOVERY)
        except FileNotFoundError:
            return Announced()
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            self._log.warning("%s: cannot read the announced people (%s); removals of earlier people may be missed",
                              self.path, error)
            return Announced()
