"""Helpers shared by the daemon's tests: small galleries and short clips from the sample photos."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from edge.commands.demo import enroll_named, photos_by_person, read_bgr
from edge.config import Config
from edge.recognition.gallery import Gallery

ENROLLED = ("ben_afflek", "elton_john")  # enrolled in the tests' galleries
STRANGER = "madonna"  # never enrolled: an unknown face


def small_gallery(celebrities: Path, work: Path, people: tuple[str, ...] = ENROLLED, photos_each: int = 3) -> Gallery:
    """A gallery of the first ``photos_each`` train photos of ``people``, enrolled as edge-enroll does
    (their copies are put in ``work/<person>/``)."""
    train = photos_by_person(celebrities / "train")
    source = work / "enroll-source"
    for person in people:
        (source / person).mkdir(parents=True, exist_ok=True)
        for photo in train[person][:photos_each]:
            shutil.copy(photo, source / person / photo.name)
    return enroll_named(source, Config())[0]


def val_photo(celebrities: Path, person: str) -> np.ndarray:
    """The first held-out photo of ``person`` (BGR)."""
    return read_bgr(photos_by_person(celebrities / "val")[person][0])
