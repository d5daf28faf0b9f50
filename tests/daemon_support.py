"""Helpers shared by the daemon's tests: small galleries and short clips from the sample photos."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.commands.demo import Recogniser, display_name, photos_by_person, read_bgr
from edge.recognition.gallery import Gallery

ENROLLED = ("ben_afflek", "elton_john")  # enrolled in the tests' galleries
STRANGER = "madonna"  # never enrolled: an unknown face


def small_gallery(recogniser: Recogniser, celebrities: Path, people: tuple[str, ...] = ENROLLED,
                  photos_each: int = 3) -> Gallery:
    """A gallery of a few train photos of ``people``."""
    gallery = Gallery(recogniser.encoder.identity)
    train = photos_by_person(celebrities / "train")
    for person in people:
        rows, sources = [], []
        for photo in train[person]:
            embedding = recogniser.embed_largest(read_bgr(photo))
            if embedding is not None:
                rows.append(embedding)
                sources.append(photo.name)
            if len(rows) == photos_each:
                break
        gallery.add(display_name(person), np.stack(rows), sources)
    return gallery


def val_photo(celebrities: Path, person: str) -> np.ndarray:
    """The first held-out photo of ``person`` (BGR)."""
    return read_bgr(photos_by_person(celebrities / "val")[person][0])
