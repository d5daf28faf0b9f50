"""The gallery keeps biometric data safely; the matcher says "unknown" to strangers."""
from __future__ import annotations

import dataclasses
import os
import stat
import time
import unicodedata

import numpy as np
import pytest

from edge.recognition.gallery import Gallery, GalleryError, load, save
from edge.runtime.model_files import EmbedderIdentity
from edge.recognition.matcher import Matcher, gallery_threshold, similarity_score

IDENTITY = EmbedderIdentity("facenet-vggface2-int8", "ab" * 32, 8, "landmarks", False)


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture()
def gallery() -> Gallery:
    rng = np.random.default_rng(1)
    g = Gallery(IDENTITY)
    g.add("Nguyễn Thị Minh Khai", unit(rng.normal(size=(3, 8))), ["a.jpg", "b.jpg", "c.jpg"])
    g.add("Zoë O'Brien", unit(rng.normal(size=(2, 8))), ["d.jpg", "e.jpg"])
    return g


def test_round_trip_keeps_names_ids_and_embeddings(tmp_path, gallery):
    path = tmp_path / "state" / "gallery.npz"
    save(gallery, path)
    loaded = load(path)
    assert [p.name for p in loaded.people] == ["Nguyễn Thị Minh Khai", "Zoë O'Brien"]
    assert [p.id for p in loaded.people] == [p.id for p in gallery.people]
    for before, after in zip(gallery.people, loaded.people):
        np.testing.assert_array_equal(before.embeddings, after.embeddings)
        assert before.sources == after.sources
    assert loaded.embedder == IDENTITY


def test_written_owner_only_and_without_leftovers(tmp_path, gallery):
    path = tmp_path / "gallery.npz"
    save(gallery, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["gallery.npz"]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_gallery_is_named_in_one_line(tmp_path, gallery, damage):
    path = tmp_path / "gallery.npz"
    save(gallery, path)
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"not a gallery", "empty": b""}[damage])
    with pytest.raises(GalleryError, match="gallery.npz: gallery is corrupt or truncated") as raised:
        load(path)
    assert "\n" not in str(raised.value)


def test_empty_gallery_never_replaces_a_real_one(tmp_path, gallery):
    path = tmp_path / "gallery.npz"
    save(gallery, path)
    before = path.read_bytes()
    with pytest.raises(GalleryError, match="refusing to replace"):
        save(Gallery(IDENTITY), path)
    assert path.read_bytes() == before


def test_failed_write_leaves_the_old_gallery(tmp_path, gallery, monkeypatch):
    path = tmp_path / "gallery.npz"
    save(gallery, path)
    before = path.read_bytes()
    gallery.people[0].name = "changed"

    def crash(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        save(gallery, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["gallery.npz"]


def test_gallery_of_another_model_is_refused(gallery):
    other = EmbedderIdentity("facenet-casia-int8", "cd" * 32, 8, "landmarks", False)
    with pytest.raises(GalleryError, match="enroll again"):
        Matcher(gallery, other, 0.4)


def test_a_refused_gallery_says_what_differs_when_the_names_are_the_same(gallery):
    rebuilt = dataclasses.replace(IDENTITY, sha256="cd" * 32, flip_fusion=True)
    with pytest.raises(GalleryError) as refused:
        Matcher(gallery, rebuilt, 0.4)
    message = str(refused.value)
    assert "model file sha256 abababab... vs cdcdcdcd... (the same name, another file)" in message
    assert "flip fusion off vs on" in message and "alignment" not in message and "\n" not in message


def test_best_of_k_names_the_person_and_rejects_strangers(gallery):
    matcher = Matcher(gallery, IDENTITY, threshold=0.6)
    person = gallery.people[0]
    probe = unit(person.embeddings[1:2] + 0.05)
    rows, _ = gallery.matrix()
    stranger = unit(np.linalg.svd(rows)[2][-1:])  # orthogonal to every enrolled photo
    known, unknown = matcher.match(np.concatenate([probe, stranger]))
    assert known.known and known.name == "Nguyễn Thị Minh Khai" and known.score >= 0.5
    assert not unknown.known and unknown.score < 0.5


def test_remove_by_name_or_id(gallery):
    person_id = gallery.people[1].id
    assert gallery.remove(person_id).name == "Zoë O'Brien"
    with pytest.raises(GalleryError, match="no enrolled person"):
        gallery.remove("nobody")


def test_remove_takes_a_name_as_typed_in_any_case_and_unicode_form(gallery):
    typed = unicodedata.normalize("NFD", "nguyễn thị MINH khai")
    assert gallery.remove(typed).name == "Nguyễn Thị Minh Khai"
    assert [p.name for p in gallery.people] == ["Zoë O'Brien"]


def test_remove_refuses_a_name_that_fits_two_people_but_for_case(gallery):
    gallery.add("zoë o'brien", gallery.people[1].embeddings, ["f.jpg", "g.jpg"])
    with pytest.raises(GalleryError, match="2 enrolled people are named .*ZOË O'BRIEN.*give the exact name or the id"):
        gallery.remove("ZOË O'BRIEN")
    assert gallery.remove("zoë o'brien").sources == ["f.jpg", "g.jpg"]  # the exact name still works


def test_score_is_monotonic_and_half_at_the_threshold():
    similarities = np.linspace(-1, 1, 201)
    scores = similarity_score(similarities, 0.4)
    assert np.all(np.diff(scores) >= 0)
    assert similarity_score(0.4, 0.4) == pytest.approx(0.5)
    assert scores[0] == 0 and scores[-1] == 1


def test_matching_ten_thousand_embeddings_is_vectorised():
    """Not a timing assertion: checks the result against a loop; the figure is printed."""
    rng = np.random.default_rng(2)
    identity = EmbedderIdentity("m", "0" * 64, 512, "landmarks", False)
    g = Gallery(identity)
    for i in range(2000):
        g.add(f"person {i}", unit(rng.normal(size=(5, 512))), [f"{i}-{k}" for k in range(5)])
    matcher = Matcher(g, identity, 0.4)
    probes = unit(rng.normal(size=(4, 512)))
    started = time.perf_counter()
    matches = matcher.match(probes)
    print(f"\n4 probes against 10,000 embeddings: {(time.perf_counter() - started) * 1000:.2f} ms")
    rows, owner = g.matrix()
    for probe, match in zip(probes, matches):
        best = max(range(2000), key=lambda i: (rows[owner == i] @ probe).max())
        assert match.person_id == g.people[best].id


TAIL = [[1e-2, 0.40], [1e-3, 0.50], [1e-4, 0.58], [1e-5, 0.65], [1e-6, 0.71]]


def test_gallery_threshold_rises_with_the_number_of_comparisons():
    assert gallery_threshold(TAIL, 1, 1e-3) == pytest.approx(0.50, abs=1e-6)
    assert gallery_threshold(TAIL, 10, 1e-3) == pytest.approx(0.58, abs=2e-3)  # each comparison at ~1e-4
    assert gallery_threshold(TAIL, 100, 1e-3) == pytest.approx(0.65, abs=2e-3)
    sizes = [1, 3, 15, 60, 300, 1269, 10_000, 10**7]
    thresholds = [gallery_threshold(TAIL, n, 1e-3) for n in sizes]
    assert all(b > a for a, b in zip(thresholds, thresholds[1:]))
    assert thresholds[-1] <= 0.999  # extrapolated below the measured tail, capped
    assert gallery_threshold(TAIL, 1, 0.5) == pytest.approx(0.40)  # looser than the tail: its loosest point
    with pytest.raises(ValueError, match="stranger_far"):
        gallery_threshold(TAIL, 10, 0.0)


def test_decision_threshold_grows_with_the_gallery_and_yields_to_the_owner(gallery):
    from dataclasses import replace

    from edge.recognition.matcher import decision_threshold
    from edge.runtime.model_files import load_manifest

    spec = replace(load_manifest().embedder(), match_threshold=0.50, impostor_tail=tuple(map(tuple, TAIL)))
    small = decision_threshold(spec, gallery)  # 5 enrolled photos
    bigger = Gallery(IDENTITY, list(gallery.people))
    bigger.add("third person", unit(np.random.default_rng(3).normal(size=(20, 8))), [f"{i}.jpg" for i in range(20)])
    assert 0.55 < small < decision_threshold(spec, bigger) < 0.71  # 5 photos: each comparison at FAR 2e-4
    assert decision_threshold(spec, Gallery(IDENTITY)) == pytest.approx(0.50)  # never below the pair threshold
    assert decision_threshold(spec, bigger, override=0.42) == 0.42
    assert decision_threshold(spec, gallery, stranger_far=1e-2) < small
    assert decision_threshold(replace(spec, impostor_tail=()), bigger) == 0.50
