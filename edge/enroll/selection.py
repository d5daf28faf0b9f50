"""Choosing each person's usable photos: one dominant face, good quality, consistent with the rest.

Each photo goes through detection, the choice of a face (a single face or one clearly
dominant one), alignment and the quality gate of :mod:`edge.vision.quality`, and embedding by
:class:`~edge.vision.face_encoder.FaceEncoder` (the daemon's own path). Then, per person, copies of
one photo (same bytes, or faces nearly identical) are dropped, and a photo whose face does not
match the person's other photos is left out as probably someone else's.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..config import QualityConfig
from ..face import Face
from ..recognition.gallery import Gallery
from ..vision.align import margin_crop
from ..vision.detector import MTCNNDetector
from ..vision.face_encoder import FaceEncoder
from ..vision.quality import FaceQuality, assess, rejection
from .photos import PersonFolder, PhotoSkipped, decode, read_bytes

DOMINANCE = 1.5  # the largest face must be this many times taller than the next to be chosen
NEAR_DUPLICATE = 0.95  # cosine above which two photos' faces are taken for copies of one photo (see docs/enroll.md)

SKIP_CODES = ("unreadable", "too_large", "no_face", "several_faces", "too_small", "blurred", "turned_away",
              "duplicate", "inconsistent")
"""Why a photo was not used, in the order reports list them."""


@dataclass(frozen=True)
class EnrollmentSettings:
    """What makes a photo usable (quality thresholds from the daemon's ``quality`` section)."""

    quality: QualityConfig
    consistency_threshold: float  # a photo must match the person's other photos this well (cosine)
    duplicate_identity_threshold: float  # a new person this similar to an enrolled one is reported
    dominance: float = DOMINANCE
    near_duplicate: float = NEAR_DUPLICATE


@dataclass
class PhotoOutcome:
    """What became of one photo."""

    path: Path
    relative: str  # path inside SOURCE, as shown in reports
    code: str | None = None  # None when accepted, else one of SKIP_CODES
    reason: str | None = None  # the skip reason in words
    sha256: str | None = None
    face: Face | None = None  # in the decoded image's pixels
    crop: np.ndarray | None = None  # aligned RGB crop the embedding was made from
    embedding: np.ndarray | None = None
    quality: FaceQuality | None = None
    consistency: float | None = None  # median cosine to the person's other accepted photos
    export_crop: np.ndarray | None = None  # RGB margin crop for --export-aligned (the tutorial's processed folder)
    seconds: float = 0.0

    @property
    def accepted(self) -> bool:
        """True when the photo's face is enrolled."""
        return self.code is None

    def skip(self, code: str, reason: str) -> None:
        """Mark the photo as not used."""
        self.code, self.reason = code, reason


@dataclass
class PersonOutcome:
    """One person's photos and what became of them."""

    folder: PersonFolder
    photos: list[PhotoOutcome] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The display name (from the folder name)."""
        return self.folder.name

    @property
    def accepted(self) -> list[PhotoOutcome]:
        """The photos whose faces are enrolled."""
        return [photo for photo in self.photos if photo.accepted]

    def embeddings(self) -> np.ndarray:
        """(k, D) embeddings of the accepted photos."""
        return np.stack([photo.embedding for photo in self.accepted])


def choose_face(faces: list[Face], dominance: float) -> Face:
    """The only face, or the one at least ``dominance`` times taller than any other; else PhotoSkipped."""
    if not faces:
        raise PhotoSkipped("no_face", "no face found")
    ordered = sorted(faces, key=lambda face: face.height, reverse=True)
    if len(ordered) > 1 and ordered[0].height < dominance * ordered[1].height:
        raise PhotoSkipped("several_faces", f"{len(faces)} faces of comparable size "
                                            f"({ordered[0].height:.0f} and {ordered[1].height:.0f} px tall)")
    return ordered[0]


def _in_image(face: Face, working_scale: float) -> Face:
    """A face found in the working image, in the decoded image's pixels."""
    if working_scale == 1.0:
        return face
    factor = 1.0 / working_scale
    return Face(tuple(v * factor for v in face.box), face.score, face.landmarks * np.float32(factor))


def _quality_code(problem: str) -> str:
    """The skip code of a :func:`edge.vision.quality.rejection` reason ("too small (...)" -> "too_small")."""
    for words, code in (("too small", "too_small"), ("blurred", "blurred"), ("turned away", "turned_away")):
        if problem.startswith(words):
            return code
    raise ValueError(f"unknown quality rejection {problem!r}")


class Enroller:
    """Turns person folders into accepted faces and embeddings, reporting every photo left out."""

    def __init__(self, detector: MTCNNDetector, encoder: FaceEncoder, settings: EnrollmentSettings,
                 export: tuple[int, int] | None = None) -> None:
        """``export``: (size, margin) of tutorial-style margin crops to keep for each photo, or None."""
        self.detector = detector
        self.encoder = encoder
        self.settings = settings
        self.export = export

    def photo(self, path: Path, relative: str, seen: dict[str, str]) -> PhotoOutcome:
        """Read, detect, check and embed one photo; ``seen`` maps sha256 -> first photo with those bytes."""
        outcome = PhotoOutcome(path, relative)
        started = time.perf_counter()
        try:
            self._process(outcome, seen)
        except PhotoSkipped as skipped:
            outcome.skip(skipped.code, str(skipped))
        outcome.seconds = time.perf_counter() - started
        return outcome

    def _process(self, outcome: PhotoOutcome, seen: dict[str, str]) -> None:
        data = read_bytes(outcome.path)
        outcome.sha256 = hashlib.sha256(data).hexdigest()
        first = seen.get(outcome.sha256)
        if first is not None:  # checked before decoding: a copy costs no decode
            raise PhotoSkipped("duplicate", f"same file as {first}")
        loaded = decode(data)
        seen[outcome.sha256] = outcome.relative  # only a decodable photo: copies of a broken one are reported broken
        found = self.detector.detect(loaded.working)
        face = _in_image(choose_face(found, self.settings.dominance), loaded.working_scale)
        outcome.face = face
        rgb = cv2.cvtColor(loaded.image, cv2.COLOR_BGR2RGB)
        crop = self.encoder.align(rgb, [face])
        outcome.crop = crop[0]
        outcome.quality = assess(face, crop[0])
        problem = rejection(outcome.quality, self.settings.quality)
        if problem is not None:
            raise PhotoSkipped(_quality_code(problem), problem)
        outcome.embedding = self.encoder.embed_crops(crop)[0]
        if self.export is not None:
            outcome.export_crop = margin_crop(rgb, face, size=self.export[0], margin=self.export[1])

    def person(self, folder: PersonFolder, source: Path, seen: dict[str, str],
               progress: Callable[[PhotoOutcome], None] | None = None) -> PersonOutcome:
        """All of a person's photos processed (``progress`` called after each), copies and
        inconsistent photos left out."""
        outcome = PersonOutcome(folder)
        for path in folder.photos:
            outcome.photos.append(self.photo(path, str(path.relative_to(source)), seen))
            if progress is not None:
                progress(outcome.photos[-1])
        drop_near_duplicates(outcome.accepted, self.settings.near_duplicate)
        outcome.warnings.extend(check_consistency(outcome.accepted, self.settings.consistency_threshold))
        if not folder.photos:
            outcome.warnings.append("the folder has no photos")
        elif len(outcome.accepted) == 1:
            outcome.warnings.append("only one usable photo: add a few more for reliable recognition")
        return outcome


def drop_near_duplicates(accepted: list[PhotoOutcome], limit: float) -> None:
    """Mark later photos whose face is nearly identical (cosine >= ``limit``) to an earlier kept one."""
    kept: list[PhotoOutcome] = []
    for photo in accepted:
        twin = next((k for k in kept if float(k.embedding @ photo.embedding) >= limit), None)
        if twin is None:
            kept.append(photo)
        else:
            similarity = float(twin.embedding @ photo.embedding)
            photo.skip("duplicate", f"copy of {twin.relative} (faces {similarity:.3f} alike)")


def check_consistency(accepted: list[PhotoOutcome], threshold: float) -> list[str]:
    """Leave out photos that do not match the person's other photos; return warnings in words.

    With three or more photos, a photo whose median cosine to the others is below ``threshold``
    is probably someone else's. With two that do not match each other, neither can be trusted.
    """
    if len(accepted) < 2:
        return []
    rows = np.stack([photo.embedding for photo in accepted])
    similarity = rows @ rows.T
    if len(accepted) == 2:
        value = float(similarity[0, 1])
        for photo in accepted:
            photo.consistency = value
        if value >= threshold:
            return []
        for photo in accepted:
            photo.skip("inconsistent", f"the two photos do not match each other (cosine {value:.2f} < "
                                       f"{threshold:.2f}): which one is this person?")
        return ["the two photos show different people; add more photos of this person"]
    np.fill_diagonal(similarity, np.nan)
    medians = np.nanmedian(similarity, axis=1)
    for photo, median in zip(accepted, medians):
        photo.consistency = float(median)
        if median < threshold:
            photo.skip("inconsistent", f"does not match this person's other photos (median cosine "
                                       f"{median:.2f} < {threshold:.2f}): someone else?")
    left_out = int((medians < threshold).sum())
    if left_out * 2 >= len(accepted):
        return [f"{left_out} of {len(accepted)} photos do not match the others: check this folder"]
    return []


def likely_same_people(people: list[PersonOutcome], gallery: Gallery, threshold: float) -> dict[str, list[str]]:
    """For each new person, the other people (enrolled, or new in this run) most of whose photos match.

    Person A matches B when the median over A's photos of the best cosine to B's photos
    reaches ``threshold``.
    """
    others: list[tuple[str, np.ndarray]] = [(p.name, p.embeddings) for p in gallery.people]
    others += [(p.name, p.embeddings()) for p in people if p.accepted]
    found: dict[str, list[str]] = {}
    for person in people:
        if not person.accepted:
            continue
        rows = person.embeddings()
        for name, theirs in others:
            if name == person.name:
                continue
            similarity = float(np.median((rows @ theirs.T).max(axis=1)))
            if similarity >= threshold:
                found.setdefault(person.name, []).append(f"{name} (median best cosine {similarity:.2f})")
    return found
