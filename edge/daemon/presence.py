"""Per-person presence for home automation: present when recognized, away after a quiet spell."""
from __future__ import annotations

from ..events import PresenceChange


class PresenceTracker:
    """Knows who is present; reports each change once.

    A person becomes present when recognized and stays present while recognized faces of
    them are still being tracked; they become away ``away_after_s`` seconds after they were
    last seen. Nobody is reported away who was never reported present.
    """

    def __init__(self, away_after_s: float, device_id: str, device: str) -> None:
        self.away_after_s = away_after_s
        self.device_id = device_id
        self.device = device
        self._last_seen: dict[str, tuple[str, float]] = {}  # person id -> (name, time)

    def seen(self, person_id: str, name: str, timestamp: float) -> PresenceChange | None:
        """The person was seen now; a change when they were not present before."""
        was_present = person_id in self._last_seen
        self._last_seen[person_id] = (name, timestamp)
        return None if was_present else PresenceChange(person_id, name, True, self.device_id, self.device, timestamp)

    def expire(self, now: float) -> list[PresenceChange]:
        """The people who have just become away."""
        gone = [(pid, name) for pid, (name, seen) in self._last_seen.items() if now - seen >= self.away_after_s]
        for person_id, _ in gone:
            del self._last_seen[person_id]
        return [PresenceChange(pid, name, False, self.device_id, self.device, now) for pid, name in gone]

    @property
    def present(self) -> list[str]:
        """Ids of the people present now."""
        return list(self._last_seen)
