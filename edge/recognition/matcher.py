"""Open-set matching: an embedding becomes a known person or "unknown", with a score in [0, 1].

Similarity is the cosine between unit embeddings; a person's similarity is the best over
their enrolled photos (best-of-k). A face is known when that best similarity reaches the
decision threshold: the model's pair threshold (calibrated on LFW at a false-accept rate of
1e-3, from the manifest), raised with the size of the gallery so that a stranger, who is
compared with every enrolled photo, is still accepted only about once in a thousand
(:func:`decision_threshold`; figures in docs/recognition.md).

The published score maps similarity s and threshold t to [0, 1], monotonically, with 0.5
exactly at the decision threshold:

    score = 0.5 + 0.5 * (s - t) / (1 - t)    when s >= t  (known: 0.5 .. 1)
    score = 0.5 * max(s, 0) / t              when s <  t  (unknown: 0 .. 0.5)

so "score >= 0.5" means "as similar as the calibration required", and 1 means identical.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import EdgeError
from ..runtime.model_files import EmbedderIdentity, ModelSpec
from .gallery import Gallery, GalleryError


@dataclass(frozen=True)
class Match:
    """The decision for one face."""

    known: bool
    person_id: str | None  # the best-matching person, also when below the threshold
    name: str | None
    similarity: float  # best cosine similarity to that person's photos
    score: float  # similarity mapped to [0, 1]; >= 0.5 exactly when known


def similarity_score(similarity: np.ndarray | float, threshold: float) -> np.ndarray:
    """The documented [0, 1] score of a cosine similarity (see the module docstring)."""
    s = np.asarray(similarity, dtype=np.float64)
    above = 0.5 + 0.5 * (s - threshold) / (1.0 - threshold)
    below = 0.5 * np.maximum(s, 0.0) / threshold
    return np.clip(np.where(s >= threshold, above, below), 0.0, 1.0)


def gallery_threshold(tail: Sequence[Sequence[float]], comparisons: int, stranger_far: float) -> float:
    """The cosine threshold that keeps a stranger's false-accept rate near ``stranger_far`` when
    compared with ``comparisons`` enrolled embeddings.

    A stranger is accepted when any comparison passes, so each may pass with probability
    p = 1 - (1 - stranger_far) ** (1 / comparisons) (about stranger_far / comparisons). ``tail``
    is the model's impostor tail from the manifest, ``[[far, threshold], ...]`` measured on LFW
    cross-identity pairs; the threshold at p is interpolated linearly in log(far), and
    extrapolated from the last two points below the smallest far measured.
    """
    if not 0.0 < stranger_far < 1.0:
        raise ValueError(f"stranger_far must be in (0, 1), got {stranger_far}")
    points = sorted((float(far), float(threshold)) for far, threshold in tail)
    if len(points) < 2:
        raise ValueError("the impostor tail needs at least two points")
    per_comparison = -math.expm1(math.log1p(-stranger_far) / max(1, comparisons))
    logs = [math.log(far) for far, _ in points]
    target = math.log(per_comparison)
    if target >= logs[-1]:
        return points[-1][1]
    index = 1 if target < logs[0] else next(i for i in range(1, len(points)) if logs[i] >= target)
    (f0, t0), (f1, t1) = (logs[index - 1], points[index - 1][1]), (logs[index], points[index][1])
    return float(min(0.999, t0 + (t1 - t0) * (target - f0) / (f1 - f0)))


def decision_threshold(spec: ModelSpec, gallery: Gallery, override: float | None = None,
                       stranger_far: float = 1e-3) -> float:
    """The cosine a face must reach to be named, for this model and this gallery.

    ``override`` (the owner's ``recognition.threshold``) wins. Otherwise the pair threshold of
    the manifest (FAR 1e-3 on LFW), raised by :func:`gallery_threshold` so that a stranger
    compared with every enrolled photo is accepted with probability about ``stranger_far``.
    """
    if override is not None:
        return override
    if spec.match_threshold is None:
        raise EdgeError(f"model {spec.name!r} has no calibrated match_threshold: set recognition.threshold")
    if not spec.impostor_tail:
        return spec.match_threshold
    comparisons = sum(len(person.embeddings) for person in gallery.people)
    return max(spec.match_threshold, gallery_threshold(spec.impostor_tail, comparisons, stranger_far))


class Matcher:
    """Matches embeddings against a gallery made by the same embedder and preparation."""

    def __init__(self, gallery: Gallery, embedder: EmbedderIdentity, threshold: float) -> None:
        if gallery.embedder != embedder:
            raise GalleryError(f"the gallery was made by another embedder than the running one (gallery vs running: "
                               f"{gallery.embedder.differences(embedder)}): enroll again with edge-enroll --replace")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        self.threshold = threshold
        self._people = list(gallery.people)
        self._rows, owner = gallery.matrix()
        self._starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]]) if len(owner) else owner

    def match(self, embeddings: np.ndarray) -> list[Match]:
        """One Match per row of ``embeddings`` (M, D), unit length."""
        if not self._people:
            return [Match(False, None, None, 0.0, 0.0) for _ in range(len(embeddings))]
        similarities = np.asarray(embeddings, np.float32) @ self._rows.T  # (M, N)
        per_person = np.maximum.reduceat(similarities, self._starts, axis=1)  # (M, people)
        best = per_person.argmax(axis=1)
        best_similarity = per_person[np.arange(len(best)), best]
        scores = similarity_score(best_similarity, self.threshold)
        matches = []
        for index, similarity, score in zip(best, best_similarity, scores):
            person = self._people[index]
            matches.append(Match(bool(similarity >= self.threshold), person.id, person.name,
                                 float(similarity), float(score)))
        return matches
