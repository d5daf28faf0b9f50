"""The enrolled people: several embeddings each, stored atomically with owner-only permissions.

File format (version 1): a NumPy ``.npz`` archive (no pickles) holding ``meta``, a JSON
string, ``embeddings`` (N, D) float32 and ``owner`` (N,) int32, the index in
``meta["people"]`` of each row. ``meta`` records the format and version, the embedder that
produced the rows (name, sha256, size) and how faces were prepared for it, so a gallery
made with another model or preparation is refused rather than matched wrongly.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..errors import EdgeError
from ..names import same_name
from ..runtime.model_files import EmbedderIdentity

FORMAT = "edge-facerec-gallery"
VERSION = 1


class GalleryError(EdgeError):
    """A gallery file that cannot be read, or cannot be used with the running model."""


@dataclass
class Person:
    """One enrolled person: a display name (any Unicode), a stable id, one embedding per photo."""

    id: str
    name: str
    embeddings: np.ndarray  # (k, D) float32, unit length
    sources: list[str]  # one per embedding: the photo it came from
    enrolled: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


@dataclass
class Gallery:
    """Enrolled people for one embedder."""

    embedder: EmbedderIdentity
    people: list[Person] = field(default_factory=list)

    def add(self, name: str, embeddings: np.ndarray, sources: list[str]) -> Person:
        """Enroll ``name`` with ``embeddings`` (one row per photo), or add them to that person."""
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embedder.embedding_size or len(embeddings) == 0:
            raise ValueError(f"embeddings for {name!r} must be (k, {self.embedder.embedding_size}) with k >= 1, "
                             f"got {embeddings.shape}")
        if len(sources) != len(embeddings):
            raise ValueError(f"{len(sources)} sources for {len(embeddings)} embeddings of {name!r}")
        existing = self.find(name)
        if existing is not None:
            existing.embeddings = np.concatenate([existing.embeddings, embeddings])
            existing.sources.extend(sources)
            return existing
        person = Person(id=f"p-{uuid.uuid4().hex[:12]}", name=name, embeddings=embeddings, sources=list(sources))
        self.people.append(person)
        return person

    def find(self, name_or_id: str) -> Person | None:
        """The person with this id, or else with this display name."""
        for person in self.people:
            if person.id == name_or_id:
                return person
        return next((person for person in self.people if person.name == name_or_id), None)

    def remove(self, name_or_id: str) -> Person:
        """Remove and return the person with this id or name, the name as a person types it (Unicode
        form and letter case do not matter, see :mod:`edge.names`); raise naming what was not found,
        or who is meant when the name fits several people."""
        person = self.find(name_or_id)
        if person is None:
            alike = [p for p in self.people if same_name(p.name, name_or_id)]
            if len(alike) > 1:
                people = ", ".join(f"{p.name} ({p.id})" for p in alike)
                raise GalleryError(f"{len(alike)} enrolled people are named {name_or_id!r} but for letter case: "
                                   f"{people}; give the exact name or the id")
            person = alike[0] if alike else None
        if person is None:
            raise GalleryError(f"no enrolled person with id or name {name_or_id!r}")
        self.people.remove(person)
        return person

    def matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """All embeddings stacked (N, D), and the index of each row's person (N,)."""
        if not self.people:
            return np.empty((0, self.embedder.embedding_size), np.float32), np.empty(0, np.int32)
        rows = np.concatenate([p.embeddings for p in self.people]).astype(np.float32)
        owner = np.concatenate([np.full(len(p.embeddings), i, np.int32) for i, p in enumerate(self.people)])
        return rows, owner


def save(gallery: Gallery, path: Path, allow_empty: bool = False) -> None:
    """Write ``gallery`` to ``path`` atomically (temporary file, fsync, rename), mode 0600.

    An empty gallery does not replace a non-empty one unless ``allow_empty``.
    """
    path = Path(path)
    if not gallery.people and not allow_empty and path.exists() and path.stat().st_size > 0:
        raise GalleryError(f"{path}: refusing to replace an existing gallery with an empty one")
    rows, owner = gallery.matrix()
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "embedder": gallery.embedder.__dict__,
        "people": [{"id": p.id, "name": p.name, "sources": p.sources, "enrolled": p.enrolled} for p in gallery.people],
    }
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array(json.dumps(meta, ensure_ascii=False)), embeddings=rows, owner=owner)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(buffer.getvalue())
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def load(path: Path) -> Gallery:
    """Read a gallery file, or raise a one-line GalleryError naming the file and the problem."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
            rows = archive["embeddings"].astype(np.float32)
            owner = archive["owner"].astype(np.int64)
    except FileNotFoundError:
        raise GalleryError(f"{path}: gallery not found (enroll people with edge-enroll)") from None
    except (zipfile.BadZipFile, EOFError, KeyError, ValueError, OSError) as error:
        raise GalleryError(f"{path}: gallery is corrupt or truncated ({type(error).__name__}); "
                           "restore a backup or enroll again") from None
    if meta.get("format") != FORMAT:
        raise GalleryError(f"{path}: not an edge-facerec gallery")
    if meta.get("version") != VERSION:
        raise GalleryError(f"{path}: gallery format version {meta.get('version')} is not supported "
                           f"(this version reads {VERSION})")
    try:
        embedder = EmbedderIdentity(**meta["embedder"])
        entries = meta["people"]
        if len(rows) != len(owner) or (len(owner) and (owner.min() < 0 or owner.max() >= len(entries))):
            raise ValueError("rows and people disagree")
        people = [Person(id=e["id"], name=e["name"], embeddings=rows[owner == i], sources=list(e["sources"]),
                         enrolled=e["enrolled"]) for i, e in enumerate(entries)]
    except (KeyError, TypeError, ValueError) as error:
        raise GalleryError(f"{path}: gallery is inconsistent ({error}); restore a backup or enroll again") from None
    return Gallery(embedder=embedder, people=people)
