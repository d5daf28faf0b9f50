"""Reading a file that could be anything: only a regular file is read, at most ``max_bytes`` of it.

A FIFO, a device node or a socket is refused without being opened (``lstat``/``stat`` first), and
the file is opened with ``O_NONBLOCK`` and checked again with ``fstat`` on the open descriptor, so
nothing swapped in between can make a read hang. With ``follow_links=False`` a symbolic link is
refused too (``O_NOFOLLOW``): a photo on a USB stick cannot point the reader elsewhere.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link"))


class NotRegularFileError(OSError):
    """The path is a FIFO, device, socket, folder or (when links are not followed) a symbolic link."""


class FileTooLargeError(OSError):
    """The file holds more than the reader accepts."""


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def read_regular_file(path: Path | str, max_bytes: int, follow_links: bool = True) -> bytes:
    """The bytes of the regular file at ``path``; NotRegularFileError, FileTooLargeError or the OSError
    of opening it (FileNotFoundError, PermissionError ...)."""
    info = os.stat(path) if follow_links else os.lstat(path)
    if not stat.S_ISREG(info.st_mode):
        raise NotRegularFileError(errno.EINVAL, f"{_kind(info.st_mode)}, not a regular file", str(path))
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_links else os.O_NOFOLLOW)
    descriptor = os.open(path, flags)
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):  # swapped after the first look
            raise NotRegularFileError(errno.EINVAL, f"{_kind(info.st_mode)}, not a regular file", str(path))
        if info.st_size > max_bytes:
            raise FileTooLargeError(errno.EFBIG, f"larger than {max_bytes} bytes", str(path))
        chunks, remaining = [], max_bytes + 1
        while remaining > 0:
            chunk = os.read(descriptor, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    finally:
        os.close(descriptor)
    data = b"".join(chunks)
    if len(data) > max_bytes:  # grew while being read
        raise FileTooLargeError(errno.EFBIG, f"larger than {max_bytes} bytes", str(path))
    return data
