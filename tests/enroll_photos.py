"""Hostile and awkward photo files for the edge-enroll tests, built from real photos."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np


def exif_orientation_segment(orientation: int) -> bytes:
    """A JPEG APP1 segment holding a big-endian EXIF block with one tag: Orientation (0x0112)."""
    entry = struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)  # tag, SHORT, count 1, value, padding
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1) + entry + struct.pack(">I", 0)
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def phone_photo(upright_bgr: np.ndarray) -> bytes:
    """JPEG bytes as a phone writes a portrait: pixels stored sideways, EXIF Orientation 6 (rotate 90
    clockwise to display)."""
    ok, data = cv2.imencode(".jpg", cv2.rotate(upright_bgr, cv2.ROTATE_90_COUNTERCLOCKWISE))
    assert ok
    data = data.tobytes()
    return data[:2] + exif_orientation_segment(6) + data[2:]


def cmyk_jpeg(bgr: np.ndarray) -> bytes:
    """The photo as a CMYK JPEG (as print workflows save them), written with Pillow (a test dependency)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).convert("CMYK").save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def png_bomb(width: int = 12000, height: int = 9000) -> bytes:
    """A valid, small grey PNG of ``width`` x ``height`` pixels (a decompression bomb: ~100 MP)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    compressor = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0 + one grey byte per pixel
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def jpeg(bgr: np.ndarray, quality: int = 92) -> bytes:
    """JPEG bytes of a BGR image."""
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return data.tobytes()


def write(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` (parents created); return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
