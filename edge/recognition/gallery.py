"""The enrolled people: several embeddings each, stored atomically with owner-only permissions.

File format (version 1): a NumPy ``.npz`` archive (no pickles) holding ``meta``, a JSON
string, ``embeddings`` (N, D) float32 and ``owner`` (N,) int32, the index in
``meta["people"]`` of each row. ``meta`` records the format and version, the embedder that
produced the rows (name, sha256, size) and how faces were prepared for it, so a gallery
made with another model or preparation is refused rather than matched wrongly.
"""
from __future__ import annotations

import io
import os
import re
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..errors import EdgeError
from ..names import same_name
from ..runtime.model_files import EmbedderIdentity
from ..safe_read import read_regular_file
from ..untrusted import dump_json, parse_json, text_problem

FORMAT = "edge-facerec-gallery"
VERSION = 1


MAX_GALLERY_BYTES = 256 << 20  # ~100,000 photos of 512 numbers: far beyond any door's gallery
MAX_EMBEDDING_SIZE = 4096
MAX_NAME_CHARS = 256
UNIT_TOLERANCE = 1e-3  # embeddings are stored unit length (float32 rounding is ~1e-7)
PERSON_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # p- and 12 hex digits when made here; safe in MQTT topics


class GalleryError(EdgeError):
    """A gallery file that cannot be read, or cannot be used with the running model."""


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a person's display name (any Unicode, but no control characters), or None."""
    if not isinstance(name, str):
        return "is not text"
    if len(name) > MAX_NAME_CHARS:
        return f"is longer than {MAX_NAME_CHARS} characters"
    return text_problem(name)


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
        problem = name_problem(name)
        if problem:
            raise ValueError(f"name {name!r} {problem}")
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if not np.isfinite(embeddings).all():
            raise ValueError(f"embeddings for {name!r} hold NaN or infinite values")
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
    np.savez(buffer, meta=np.array(dump_json(meta)), embeddings=rows, owner=owner)
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
    """Read a gallery file, or raise a one-line GalleryError naming the file and the problem.

    Everything in the file is checked before use: the embedder's identity, each person's id (safe in
    MQTT topics), name (no control characters) and rows (at least one, of the embedder's width,
    finite, unit length), so a damaged or hand-made file is refused in one line, never matched."""
    path = Path(path)
    try:
        data = read_regular_file(path, MAX_GALLERY_BYTES)
    except FileNotFoundError:
        raise GalleryError(f"{path}: gallery not found (enroll people with edge-enroll)") from None
    except OSError as error:
        raise GalleryError(f"{path}: cannot read the gallery ({error.strerror or error})") from None
    # zipfile and numpy raise many kinds of error for a damaged archive (BadZipFile, EOFError, KeyError,
    # ValueError, zlib.error, NotImplementedError for an unknown compression, RuntimeError for an encrypted
    # member ...): whichever it is, the file is refused in one line naming it
    try:
        meta_text, rows, owner = _read_archive(data)
        meta = parse_json(meta_text, MAX_GALLERY_BYTES, max_depth=8)
    except Exception as error:
        raise GalleryError(f"{path}: gallery is corrupt or truncated ({type(error).__name__}); "
                           "restore a backup or enroll again") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise GalleryError(f"{path}: not an edge-facerec gallery")
    if meta.get("version") != VERSION:
        raise GalleryError(f"{path}: gallery format version {meta.get('version')!r} is not supported "
                           f"(this version reads {VERSION})")
    try:
        return _checked(meta, rows, owner)
    except ValueError as error:
        raise GalleryError(f"{path}: gallery is inconsistent ({error}); restore a backup or enroll again") from None


def _read_archive(data: bytes) -> tuple[str, np.ndarray, np.ndarray]:
    """The meta text, embeddings and owner arrays of a gallery file's bytes (no pickles, no zip bomb)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        if sum(member.file_size for member in archive.zip.infolist()) > MAX_GALLERY_BYTES:
            raise ValueError("unpacks to more than the largest gallery")
        meta, rows, owner = archive["meta"], archive["embeddings"], archive["owner"]
    if meta.dtype.kind != "U" or meta.ndim != 0:
        raise ValueError("meta is not text")
    return str(meta), rows, owner


def _checked(meta: dict, rows: np.ndarray, owner: np.ndarray) -> Gallery:
    """The Gallery a file's parts describe; ValueError saying what does not hold."""
    if rows.dtype.kind != "f" or rows.ndim != 2:
        raise ValueError("embeddings are not a matrix of numbers")
    if owner.dtype.kind not in "iu" or owner.ndim != 1:
        raise ValueError("owner is not a list of whole numbers")
    with np.errstate(over="ignore", invalid="ignore"):  # what overflows float32 becomes inf, refused below
        rows, owner = rows.astype(np.float32), owner.astype(np.int64)
    embedder = _embedder(meta.get("embedder"))
    entries = meta.get("people")
    if not isinstance(entries, list):
        raise ValueError("people is not a list")
    if rows.shape[1] != embedder.embedding_size:
        raise ValueError(f"embeddings are {rows.shape[1]} numbers wide, the embedder's are {embedder.embedding_size}")
    if not np.isfinite(rows).all():
        raise ValueError("embeddings hold NaN or infinite values")
    if len(rows) and np.abs(np.linalg.norm(rows, axis=1) - 1).max() > UNIT_TOLERANCE:
        raise ValueError("embeddings are not of unit length")
    if len(rows) != len(owner) or (len(owner) and (owner.min() < 0 or owner.max() >= len(entries))):
        raise ValueError("rows and people disagree")
    people, ids = [], set()
    for index, entry in enumerate(entries):
        person = _person(entry, index, rows[owner == index])
        if person.id in ids:
            raise ValueError(f"person id {person.id!r} is used twice")
        ids.add(person.id)
        people.append(person)
    return Gallery(embedder=embedder, people=people)


def _embedder(raw: object) -> EmbedderIdentity:
    types = {"model": str, "sha256": str, "embedding_size": int, "alignment": str, "flip_fusion": bool}
    if not isinstance(raw, dict) or set(raw) != set(types) or any(type(raw[k]) is not t for k, t in types.items()):
        raise ValueError(f"embedder is not {{{', '.join(f'{k}: {t.__name__}' for k, t in types.items())}}}")
    if not 1 <= raw["embedding_size"] <= MAX_EMBEDDING_SIZE:
        raise ValueError(f"embedding_size {raw['embedding_size']} is not between 1 and {MAX_EMBEDDING_SIZE}")
    return EmbedderIdentity(**raw)


def _person(entry: object, index: int, embeddings: np.ndarray) -> Person:
    if not isinstance(entry, dict) or not {"id", "name", "sources", "enrolled"} <= set(entry):
        raise ValueError(f"people[{index}] is not a person (id, name, sources, enrolled)")
    person_id, name, sources, enrolled = entry["id"], entry["name"], entry["sources"], entry["enrolled"]
    if not isinstance(person_id, str) or not PERSON_ID.fullmatch(person_id):
        raise ValueError(f"people[{index}].id {person_id!r} is not a person id")
    problem = name_problem(name)
    if problem:
        raise ValueError(f"people[{index}].name {name!r} {problem}")
    if not isinstance(sources, list) or not all(isinstance(source, str) for source in sources):
        raise ValueError(f"people[{index}].sources is not a list of text")
    if not isinstance(enrolled, str):
        raise ValueError(f"people[{index}].enrolled is not text")
    if len(embeddings) == 0:
        raise ValueError(f"{name!r} has no embeddings")
    if len(sources) != len(embeddings):
        raise ValueError(f"{name!r} has {len(sources)} sources for {len(embeddings)} embeddings")
    return Person(id=person_id, name=name, embeddings=embeddings, sources=sources, enrolled=enrolled)
