"""What the native libraries print by themselves: routed into the program's log, or silenced.

TensorFlow Lite's C++ runtime writes ``INFO: Created TensorFlow Lite XNNPACK delegate for
CPU.`` straight to file descriptor 2 the first time an interpreter allocates its tensors;
OpenCV writes ``[ WARN:0@...]`` lines for every failed attempt to open a camera, and FFmpeg
``[h264 @ 0x...]`` lines for damaged frames of a stream. None of these is something a user
can act on, and the program reports the failures that matter itself, through its own logger
(the camera that cannot be opened, the stream that stopped, the model file that is damaged).
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator

import cv2

KNOWN_CHATTER = ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",)
"""Lines native code prints that say nothing a user needs: logged at debug level only."""

_first_allocation = threading.Lock()
_allocated_before = False


@contextlib.contextmanager
def native_stderr_to_log(log: logging.Logger) -> Iterator[None]:
    """Capture what anything writes to file descriptor 2 during the block, then hand each line to
    ``log``: :data:`KNOWN_CHATTER` at debug level, anything else as a warning (a real error still
    shows, as a line of the program's log). Where descriptor 2 cannot be duplicated, nothing is
    captured."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    captured = tempfile.TemporaryFile()
    os.dup2(captured.fileno(), 2)
    try:
        yield
    finally:  # also when the block failed: what native code said about it is the best clue
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        captured.seek(0)
        text = captured.read().decode("utf-8", "replace")
        captured.close()
        for line in filter(None, (line.rstrip() for line in text.splitlines())):
            log.log(logging.DEBUG if line in KNOWN_CHATTER else logging.WARNING, "%s", line)


@contextlib.contextmanager
def first_allocation_to_log(log: logging.Logger) -> Iterator[None]:
    """Around an interpreter's ``allocate_tensors()``: the first time in the process, what native code
    prints goes to ``log`` (TFLite announces its XNNPACK delegate then, once a process); later
    allocations, which may run while other threads log, are left alone."""
    global _allocated_before
    with _first_allocation:
        first, _allocated_before = not _allocated_before, True
    if first:
        with native_stderr_to_log(log):
            yield
    else:
        yield


def quiet_opencv() -> None:
    """OpenCV logs errors only, FFmpeg (inside OpenCV's video I/O) nothing; call before the first
    video is opened. Each stays as the user set it with ``OPENCV_LOG_LEVEL`` or
    ``OPENCV_FFMPEG_LOGLEVEL`` (for debugging; OpenCV prints FFmpeg's lines on stdout then)."""
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET, read when FFmpeg is first used
