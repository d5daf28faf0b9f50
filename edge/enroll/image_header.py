"""Image format and pixel dimensions read from a file's header, without decoding it.

Lets a reader refuse a decompression bomb (a small file that decodes to gigabytes) before
any pixel is allocated. Covers the formats ``edge-enroll`` accepts: JPEG, PNG, BMP, WebP.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_NO_LENGTH = {0x01, *range(0xD0, 0xDA)}  # TEM, RSTn, SOI, EOI


@dataclass(frozen=True)
class ImageHeader:
    """What a header says: the format and the stored size (before any EXIF rotation)."""

    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        """Width times height."""
        return self.width * self.height


def read_header(data: bytes) -> ImageHeader | None:
    """The format ("jpeg", "png", "bmp", "webp") and size in ``data``, or None when it is none of
    those or its header is cut short."""
    try:
        if data.startswith(b"\xff\xd8"):
            return _jpeg(data)
        if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
            width, height = struct.unpack_from(">II", data, 16)
            return ImageHeader("png", width, height)
        if data.startswith(b"BM"):
            return _bmp(data)
        if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
            return _webp(data)
    except struct.error:  # the header is cut short
        return None
    return None


def _jpeg(data: bytes) -> ImageHeader | None:
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _JPEG_NO_LENGTH:
            position += 2
            continue
        (length,) = struct.unpack_from(">H", data, position + 2)
        if marker in _JPEG_SOF:
            height, width = struct.unpack_from(">HH", data, position + 5)
            return ImageHeader("jpeg", width, height)
        if marker == 0xDA or length < 2:  # scan data before any frame header: not a valid JPEG
            return None
        position += 2 + length
    return None


def _bmp(data: bytes) -> ImageHeader:
    (dib_size,) = struct.unpack_from("<I", data, 14)
    if dib_size == 12:  # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack_from("<HH", data, 18)
    else:
        width, height = struct.unpack_from("<ii", data, 18)
    return ImageHeader("bmp", abs(width), abs(height))


def _webp(data: bytes) -> ImageHeader | None:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        width, height = struct.unpack_from("<HH", data, 26)
        return ImageHeader("webp", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L":
        (bits,) = struct.unpack_from("<I", data, 21)
        return ImageHeader("webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":
        raw = data[24:30]
        if len(raw) < 6:
            return None
        return ImageHeader("webp", int.from_bytes(raw[:3], "little") + 1, int.from_bytes(raw[3:], "little") + 1)
    return None
