"""Per-person decisions on embeddings: the dominant face, copies, photos of somebody else, one person twice."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from edge.enroll.selection import PersonOutcome, PhotoOutcome, check_consistency, choose_face, drop_near_duplicates, likely_same_people
from edge.face import Face
from edge.enroll.session import previous_gallery
from edge.recognition.gallery import Gallery, GalleryError, save
from edge.runtime.model_files import EmbedderIdentity
from edge.enroll.photos import PersonFolder, PhotoSkipped

IDENTITY = EmbedderIdentity("m", "00" * 32, 4, "landmarks", False)


def face(height: float) -> Face:
    return Face((0.0, 0.0, height * 0.8, height), 0.99, np.zeros((5, 2), np.float32))


def photos(*rows) -> list[PhotoOutcome]:
    out = []
    for i, row in enumerate(rows):
        vector = np.asarray(row, np.float32)
        out.append(PhotoOutcome(Path(f"{i}.jpg"), f"p/{i}.jpg", embedding=vector / np.linalg.norm(vector)))
    return out


@pytest.mark.parametrize("heights, chosen", [([100], 100), ([100, 66], 100), ([40, 100, 20], 100)])
def test_the_only_or_clearly_largest_face_is_chosen(heights, chosen):
    assert choose_face([face(h) for h in heights], 1.5).height == chosen


def test_no_face_and_comparable_faces_are_refused():
    with pytest.raises(PhotoSkipped) as none:
        choose_face([], 1.5)
    with pytest.raises(PhotoSkipped) as several:
        choose_face([face(100), face(70)], 1.5)
    assert (none.value.code, several.value.code) == ("no_face", "several_faces")


def test_a_photo_of_somebody_else_among_three_is_left_out():
    group = photos([1, 0.1, 0, 0], [1, 0, 0.1, 0], [1, 0.1, 0.1, 0], [0, 0, 0, 1])
    assert check_consistency(group, 0.45) == []
    assert [p.code for p in group] == [None, None, None, "inconsistent"]


def test_two_photos_that_do_not_match_are_both_left_out():
    pair = photos([1, 0, 0, 0], [0, 1, 0, 0])
    warnings = check_consistency(pair, 0.45)
    assert [p.code for p in pair] == ["inconsistent", "inconsistent"] and "different people" in warnings[0]


def test_a_near_copy_is_dropped_but_a_different_photo_kept():
    group = photos([1, 0, 0, 0], [1, 0.05, 0, 0], [1, 0.6, 0, 0])
    drop_near_duplicates(group, 0.95)
    assert [p.code for p in group] == [None, "duplicate", None]


def test_a_new_person_matching_an_enrolled_one_is_named():
    gallery = Gallery(IDENTITY)
    gallery.add("Anna", np.array([[1, 0, 0, 0]], np.float32), ["a.jpg"])
    gallery.add("Bao", np.array([[0, 1, 0, 0]], np.float32), ["b.jpg"])
    newcomer = PersonOutcome(PersonFolder("Anna K", Path("Anna K")), photos([1, 0.1, 0, 0], [1, 0, 0.1, 0]))
    stranger = PersonOutcome(PersonFolder("Chi", Path("Chi")), photos([0, 0, 1, 0]))
    found = likely_same_people([newcomer, stranger], gallery, 0.5)
    assert list(found) == ["Anna K"] and found["Anna K"][0].startswith("Anna (")


def test_merging_into_a_gallery_of_another_model_file_says_what_differs(tmp_path):
    path = tmp_path / "gallery.npz"
    old = Gallery(IDENTITY)
    old.add("Ann", np.eye(4, dtype=np.float32)[:1], ["a.jpg"])
    save(old, path)
    rebuilt = dataclasses.replace(IDENTITY, sha256="11" * 32)
    with pytest.raises(GalleryError) as refused:
        previous_gallery(path, rebuilt, replace=False)
    assert "model file sha256 00000000... vs 11111111... (the same name, another file)" in str(refused.value)
    assert "--replace" in str(refused.value)
    assert previous_gallery(path, rebuilt, replace=True).people == []
