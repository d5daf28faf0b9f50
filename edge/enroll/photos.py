"""Finding and reading enrollment photos: one folder per person, safe decoding.

``SOURCE/<person name>/...`` holds each person's photos (``.jpg .jpeg .png .bmp .webp`` in any
letter case). Photos in subfolders of a person's folder belong to that person. Symbolic links
are never followed (reported instead), so a link loop or a link out of the stick cannot be
entered; only regular files are opened (a FIFO or a device node named ``x.jpg`` is reported, and
cannot make a read hang). A folder whose name holds a control character (an ANSI escape, say) is
reported, not enrolled. Hidden entries and the folders operating systems put on sticks
(``System Volume Information``, ``$RECYCLE.BIN``, ``.Trashes`` ...) are ignored.

Reading checks the header's dimensions before decoding (decompression bombs are refused as
"too large"), applies the EXIF orientation (OpenCV's ``IMREAD_COLOR`` does), decodes big
JPEGs at a reduced scale, and shrinks the result to a working size for detection.
"""
from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..image_files import IMAGE_SUFFIXES
from ..recognition.gallery import name_problem
from ..safe_read import FileTooLargeError, read_regular_file
from .image_header import read_header

SYSTEM_FOLDERS = {"system volume information", "$recycle.bin", "lost+found"}
MAX_FILE_BYTES = 64 * 1024 * 1024  # no photo of a face needs more
MAX_DECODED_PIXELS = 40_000_000  # ~120 MB of BGR: what one photo may occupy once decoded
WORKING_SIDE = 1600  # longer side of the image detection runs on (larger photos are shrunk)
_REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))


class PhotoSkipped(Exception):
    """A photo that cannot be used; ``code`` is the reason's key, the message says it in words."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class PersonFolder:
    """One person's folder: their display name, photo files, and what was not used and why."""

    name: str
    path: Path
    photos: list[Path] = field(default_factory=list)
    ignored: list[tuple[Path, str]] = field(default_factory=list)


@dataclass(frozen=True)
class LoadedPhoto:
    """A decoded photo, upright: as decoded (faces are cut from it) and shrunk for detection."""

    image: np.ndarray  # BGR as decoded (large JPEGs at 1/2, 1/4 or 1/8 of their size)
    working: np.ndarray  # BGR, longer side at most the working side (``image`` itself when small enough)
    working_scale: float  # working pixels per image pixel (<= 1)
    original_size: tuple[int, int]  # width, height as stored in the file


def display_name(folder_name: str) -> str:
    """A person's name from their folder: Unicode NFC (macOS writes NFD), outer spaces removed."""
    return unicodedata.normalize("NFC", folder_name).strip()


def _ignored_entry(name: str) -> bool:
    return name.startswith((".", "$")) or name.lower() in SYSTEM_FOLDERS


def scan_source(source: Path) -> tuple[list[PersonFolder], list[tuple[Path, str]]]:
    """The person folders in ``source`` (sorted by name) and the top-level entries not used, with why."""
    people: dict[str, PersonFolder] = {}
    ignored: list[tuple[Path, str]] = []
    for entry in sorted(os.scandir(source), key=lambda e: e.name):
        path = Path(entry.path)
        name = display_name(entry.name)
        if _ignored_entry(entry.name):
            continue
        if entry.is_symlink():
            ignored.append((path, "symbolic link, not followed"))
        elif not entry.is_dir(follow_symlinks=False):
            ignored.append((path, "not in a person's folder"))
        elif not name:
            ignored.append((path, "folder name is empty once spaces are removed"))
        elif problem := name_problem(name):
            ignored.append((path, f"folder name {problem}"))
        else:  # folders whose names differ only in Unicode form or outer spaces are one person
            _collect(path, people.setdefault(name, PersonFolder(name, path)))
    return sorted(people.values(), key=lambda person: person.name), ignored


def _collect(folder: Path, person: PersonFolder) -> None:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as error:
        person.ignored.append((folder, f"cannot list folder ({error.strerror or error})"))
        return
    for entry in entries:
        path = Path(entry.path)
        if _ignored_entry(entry.name):
            continue
        if entry.is_symlink():
            person.ignored.append((path, "symbolic link, not followed"))
        elif entry.is_dir(follow_symlinks=False):
            _collect(path, person)
        elif not entry.is_file(follow_symlinks=False):
            person.ignored.append((path, "not a regular file (a FIFO, device or socket)"))
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            person.photos.append(path)
        else:
            person.ignored.append((path, f"not a photo ({path.suffix or 'no suffix'})"))


def read_bytes(path: Path) -> bytes:
    """The content of the regular file at ``path`` (never through a link), or PhotoSkipped("unreadable" /
    "too_large")."""
    try:
        data = read_regular_file(path, MAX_FILE_BYTES, follow_links=False)
    except FileTooLargeError:
        raise PhotoSkipped("too_large", f"file larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB") from None
    except OSError as error:
        raise PhotoSkipped("unreadable", f"cannot read file ({error.strerror or error})") from None
    if not data:
        raise PhotoSkipped("unreadable", "empty file")
    return data


def decode(data: bytes, max_pixels: int = MAX_DECODED_PIXELS, working_side: int = WORKING_SIDE) -> LoadedPhoto:
    """Decode photo bytes upright at working size, or PhotoSkipped("unreadable" / "too_large").

    JPEGs larger than needed are decoded at 1/2, 1/4 or 1/8 scale by libjpeg itself, so a
    100-megapixel phone photo never occupies full size in memory; other formats must fit
    ``max_pixels`` as stored.
    """
    header = read_header(data)
    if header is None:
        raise PhotoSkipped("unreadable", "not a JPEG, PNG, BMP or WebP image (or its header is cut short)")
    if header.width == 0 or header.height == 0:
        raise PhotoSkipped("unreadable", f"{header.format} header says {header.width}x{header.height} pixels")
    flag, factor = cv2.IMREAD_COLOR, 1
    if header.format == "jpeg":
        for candidate, reduced in _REDUCED:
            if max(header.width, header.height) // candidate >= working_side:
                flag, factor = reduced, candidate
                break
    if header.pixels // (factor * factor) > max_pixels:
        raise PhotoSkipped("too_large", f"{header.width}x{header.height} pixels is more than the "
                                        f"{max_pixels / 1e6:.0f} megapixels allowed")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if bgr is None or bgr.size == 0:
        raise PhotoSkipped("unreadable", f"corrupt or truncated {header.format} file")
    working, scale = bgr, 1.0
    longer = max(bgr.shape[:2])
    if longer > working_side:
        scale = working_side / longer
        size = (round(bgr.shape[1] * scale), round(bgr.shape[0] * scale))
        working = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    return LoadedPhoto(bgr, working, scale, (header.width, header.height))


def load_photo(path: Path, max_pixels: int = MAX_DECODED_PIXELS, working_side: int = WORKING_SIDE) -> LoadedPhoto:
    """Read and decode the photo at ``path`` (see :func:`decode`)."""
    return decode(read_bytes(path), max_pixels, working_side)
