"""Reading enrollment photos safely: headers, EXIF orientation, CMYK, bombs, broken files, folders."""
from __future__ import annotations

import os
import unicodedata

import cv2
import numpy as np
import pytest

from edge.enroll.image_header import read_header
from edge.enroll.photos import PhotoSkipped, decode, load_photo, scan_source
from enroll_photos import cmyk_jpeg, jpeg, phone_photo, png_bomb, write


@pytest.fixture(scope="module")
def photo(celebrities):
    """A real upright portrait (BGR)."""
    path = sorted((celebrities / "train" / "madonna").iterdir())[0]
    return cv2.imread(str(path))


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".bmp", ".webp"])
def test_header_gives_the_stored_size(photo, suffix):
    ok, data = cv2.imencode(suffix, photo)
    header = read_header(data.tobytes())
    assert header is not None and (header.width, header.height) == (photo.shape[1], photo.shape[0])


def test_a_decompression_bomb_is_refused_from_its_header():
    data = png_bomb()
    assert len(data) < 1_000_000
    with pytest.raises(PhotoSkipped) as skipped:
        decode(data)
    assert skipped.value.code == "too_large" and "12000x9000" in str(skipped.value)


def test_a_large_jpeg_is_decoded_reduced_and_shrunk_to_working_size(photo):
    big = cv2.resize(photo, (photo.shape[1] * 12, photo.shape[0] * 12), interpolation=cv2.INTER_LINEAR)
    loaded = decode(jpeg(big, 80))
    assert loaded.original_size == (big.shape[1], big.shape[0])
    assert loaded.image.shape[:2] == (-(-big.shape[0] // 2), -(-big.shape[1] // 2))  # libjpeg's 1/2 scale
    assert max(loaded.working.shape[:2]) == 1600


@pytest.mark.parametrize("data, words", [
    (b"", "empty file"),
    (b"just some text, not an image\n", "not a JPEG, PNG, BMP or WebP"),
])
def test_unreadable_files_are_named_as_such(tmp_path, data, words):
    path = write(tmp_path / "x.png", data)
    with pytest.raises(PhotoSkipped) as skipped:
        load_photo(path)
    assert skipped.value.code == "unreadable" and words in str(skipped.value)


def test_a_truncated_jpeg_is_unreadable(photo):
    data = jpeg(photo)
    with pytest.raises(PhotoSkipped) as skipped:
        decode(data[: len(data) // 2])
    assert skipped.value.code == "unreadable" and "truncated" in str(skipped.value)


def test_exif_orientation_is_applied(photo):
    loaded = decode(phone_photo(photo))
    assert loaded.image.shape == photo.shape  # upright again, not sideways
    assert np.abs(loaded.image.astype(int) - photo).mean() < 4


def test_cmyk_and_greyscale_photos_decode_to_colour(photo):
    pytest.importorskip("PIL", reason="Pillow (a test dependency) writes the CMYK JPEG")
    cmyk = decode(cmyk_jpeg(photo)).image
    assert cmyk.shape == photo.shape and np.abs(cmyk.astype(int) - photo).mean() < 6
    ok, grey = cv2.imencode(".png", cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY))
    assert decode(grey.tobytes()).image.shape == photo.shape


def test_scan_finds_person_folders_nested_photos_and_reports_the_rest(tmp_path, photo):
    data = jpeg(photo)
    nfd_name = unicodedata.normalize("NFD", "Nguyễn Văn An")  # as a Mac writes it
    person = tmp_path / nfd_name
    write(person / "ảnh một.JPG", data)
    write(person / "2019" / "holiday.jpeg", data)
    write(person / "notes.txt", b"hello")
    write(person / ".hidden.jpg", data)
    write(person / "._ảnh một.JPG", b"AppleDouble")
    os.symlink(".", person / "loop")
    os.symlink("self", person / "self")
    write(tmp_path / f" {unicodedata.normalize('NFC', 'Nguyễn Văn An')}" / "from windows.jpg", data)
    (tmp_path / "   ").mkdir()
    (tmp_path / "Empty Person").mkdir()
    (tmp_path / "System Volume Information").mkdir()
    write(tmp_path / "stray.jpg", data)
    people, ignored = scan_source(tmp_path)
    assert [p.name for p in people] == ["Empty Person", "Nguyễn Văn An"]
    an = people[1]
    assert an.name == unicodedata.normalize("NFC", "Nguyễn Văn An")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in an.photos) == sorted(
        [f"{nfd_name}/2019/holiday.jpeg", f"{nfd_name}/ảnh một.JPG", f" {an.name}/from windows.jpg"])
    reasons = {p.name: why for p, why in an.ignored}
    assert reasons == {"notes.txt": "not a photo (.txt)", "loop": "symbolic link, not followed",
                       "self": "symbolic link, not followed"}
    assert [(p.name, why) for p, why in ignored] == [("   ", "folder name is empty once spaces are removed"),
                                                     ("stray.jpg", "not in a person's folder")]
    assert people[0].photos == []
