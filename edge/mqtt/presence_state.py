"""The retained presence of every enrolled person, kept equal to what this process knows.

Presence messages are retained, so without this a new process (after a crash, a restart or a
power cut) would leave the broker, and Home Assistant, showing whoever the previous process last
saw as present, and people never seen as unknown. Whenever the enrolled people change (at start
and after each gallery reload) every newly enrolled person gets a retained presence: the last
change this process saw for them, or ``away`` when it has seen none. Changes of people who are not
enrolled (yet, or any more) are kept but not published, so a removed person's cleared presence is
not brought back by their later ``away``.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from ..events import EnrolledPerson, PresenceChange


class PresenceState:
    """Who is present as far as this process knows, and which presence messages that calls for."""

    def __init__(self, device_id: str, device_name: str, clock: Callable[[], float] = time.time) -> None:
        self.device_id = device_id
        self.device_name = device_name
        self._clock = clock
        self._latest: dict[str, PresenceChange] = {}  # person id -> their last change seen by this process
        self._enrolled: set[str] = set()

    def changed(self, change: PresenceChange) -> bool:
        """Record a change; whether to publish it (the person is enrolled)."""
        self._latest[change.person_id] = change
        return change.person_id in self._enrolled

    def enrolled(self, people: list[EnrolledPerson]) -> list[PresenceChange]:
        """The enrolled people are now ``people``: the presence to publish for each one not enrolled before."""
        now = self._clock()
        new = [person for person in people if person.person_id not in self._enrolled]
        self._enrolled = {person.person_id for person in people}
        return [self._latest.get(person.person_id)
                or PresenceChange(person.person_id, person.name, False, self.device_id, self.device_name, now)
                for person in new]
