"""One enrollment run's parts: the models the configuration calls for, each person's photos
made into a gallery entry, and the gallery file merged or replaced under a lock.

``edge-enroll`` and ``edge-demo`` (and the evaluation scripts) enroll through these, so every
gallery is made one way: the same detector, face choice, quality gate and checks.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from ..config import Config, QualityConfig
from ..errors import EdgeError
from ..recognition import gallery as gallery_file
from ..recognition.gallery import Gallery, GalleryError
from ..runtime.model_files import EmbedderIdentity, ModelSpec, load_manifest
from ..vision.detector import DetectorSettings, MTCNNDetector
from ..vision.device_tuning import chosen, stored_tuning
from ..vision.face_encoder import FaceEncoder
from .photos import scan_source
from .selection import DOMINANCE, Enroller, EnrollmentSettings, PersonOutcome

CONSISTENCY_THRESHOLD = 0.45  # median cosine a photo needs to the person's other photos (docs/enroll.md)


@contextlib.contextmanager
def gallery_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock beside ``path`` so two runs cannot both read, change and write it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = path.with_name(f".{path.name}.lock")
    with open(os.open(lock, os.O_WRONLY | os.O_CREAT, 0o600), "w") as stream:
        try:
            fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"edge-enroll: waiting for another edge-enroll using {path}", file=sys.stderr)
            fcntl.flock(stream, fcntl.LOCK_EX)
        yield


def previous_gallery(path: Path, identity: EmbedderIdentity, replace: bool) -> Gallery:
    """The gallery at ``path`` (empty when there is none yet). Merging needs it readable and made by
    the same embedder; replacing only borrows ids from it, so an unusable one counts as empty."""
    if not path.exists():
        return Gallery(identity)
    try:
        existing = gallery_file.load(path)
    except GalleryError as error:
        if not replace:
            raise
        print(f"edge-enroll: note: {error}; --replace writes a new one", file=sys.stderr)
        return Gallery(identity)
    if existing.embedder != identity:
        if replace:
            return Gallery(identity)
        raise GalleryError(f"{path}: made by another embedder than the configured one (gallery vs configured: "
                           f"{existing.embedder.differences(identity)}): enroll everyone again with --replace")
    return existing


@functools.lru_cache(maxsize=2)
def _loaded_models(spec: ModelSpec, quantization: str, detector_threads: int, encoder_threads: int,
                   min_face: float) -> tuple[MTCNNDetector, FaceEncoder]:
    detector = MTCNNDetector(DetectorSettings(min_face_size=min_face, quantization=quantization,
                                              num_threads=detector_threads))
    return detector, FaceEncoder(spec, encoder_threads)


def load_models(config: Config, min_face: int) -> tuple[MTCNNDetector, FaceEncoder, float]:
    """Detector, encoder and match threshold as the daemon's configuration says (loaded once per process).

    The detector searches faces down to 1/DOMINANCE of the smallest accepted one, so that a
    comparable second face in a photo is seen."""
    spec = load_manifest().embedder(config.recognition.embedder)
    threshold = config.recognition.threshold or spec.match_threshold
    if threshold is None:
        raise EdgeError(f"model {spec.name!r} has no calibrated match_threshold: set recognition.threshold")
    choice = chosen(config, stored_tuning(config))  # the daemon's detector variant on this device
    detector, encoder = _loaded_models(spec, choice.detector_quantization, choice.detector_threads,
                                       choice.embedder_threads, max(12.0, min_face / DOMINANCE))
    return detector, encoder, threshold


def apply_to_gallery(gallery: Gallery, people: list[PersonOutcome]) -> dict[str, str]:
    """Enroll each person with accepted photos (replacing their earlier photos, keeping their id); name -> id."""
    ids = {}
    for person in people:
        if not person.accepted:
            continue
        sources = [photo.relative for photo in person.accepted]
        existing = gallery.find(person.name)
        if existing is not None and existing.name == person.name:
            existing.embeddings = person.embeddings()
            existing.sources = sources
            existing.enrolled = datetime.now(timezone.utc).isoformat(timespec="seconds")
        else:
            existing = gallery.add(person.name, person.embeddings(), sources)
        ids[person.name] = existing.id
    return ids


def make_enroller(config: Config, quality: QualityConfig, export: tuple[int, int] | None = None) -> Enroller:
    """The Enroller the configuration calls for: its models, ``quality`` gate and checks."""
    detector, encoder, threshold = load_models(config, quality.min_face_px)
    return Enroller(detector, encoder, EnrollmentSettings(quality, CONSISTENCY_THRESHOLD, threshold), export)


def enroll_source(source: Path, config: Config) -> tuple[Gallery, list[PersonOutcome]]:
    """A new gallery of SOURCE's people made as ``edge-enroll`` makes one (same detector, face choice,
    quality gate, duplicate and consistency checks), without reports; and what became of each photo."""
    people_folders, _ = scan_source(source)
    enroller = make_enroller(config, config.quality)
    seen: dict[str, str] = {}
    people = [enroller.person(folder, source, seen) for folder in people_folders]
    gallery = Gallery(enroller.encoder.identity)
    apply_to_gallery(gallery, people)
    return gallery, people
