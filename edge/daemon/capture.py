"""Frame sources behind one interface, and the capture thread that keeps only the newest frame.

Every source yields BGR uint8 frames. :func:`open_source` picks the kind from the configured
``camera.source``: ``picamera2``, a V4L2 index (``0``) or device (``/dev/video0``), an
``rtsp://`` / ``http(s)://`` URL, a video file, or a folder of images.

:class:`CaptureThread` reads one source on its own thread and keeps a single slot: a slow
pipeline takes the newest frame and never works through stale ones; frames replaced before
anybody took them are counted as dropped. A source that fails is closed and reopened after
1, 2, 4 ... seconds (up to ``reopen_max_backoff_s``); the failure shows in :attr:`state`, and
is logged as a warning once, and again only when its reason changes.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from ..config import CameraConfig
from ..errors import EdgeError
from ..image_files import IMAGE_SUFFIXES
from ..safe_read import read_regular_file
from ..supervision import Health, start_thread

log = logging.getLogger(__name__)

STREAM_PREFIXES = ("rtsp://", "rtsps://", "http://", "https://")
MAX_IMAGE_FILE_BYTES = 64 << 20  # an image of an image folder


class CaptureError(EdgeError):
    """A source that cannot be opened or stopped delivering frames."""


@dataclass(frozen=True)
class Frame:
    """One captured frame."""

    image: np.ndarray  # BGR uint8 (H, W, 3)
    number: int  # 1, 2, ... in capture order since the daemon started
    timestamp: float  # seconds since the epoch, when it was captured


class FrameSource(Protocol):
    """Something that yields BGR frames."""

    name: str

    def open(self) -> None:
        """Start delivering frames; raise CaptureError when the source is not there."""

    def read(self) -> np.ndarray | None:
        """The next BGR frame, or None at the end of a finite source; CaptureError on failure."""

    def close(self) -> None:
        """Release the device or file."""


class _Pacer:
    """Sleeps so that frames come out at ``fps`` (video files and folders played in real time)."""

    def __init__(self, fps: float | None) -> None:
        self.period = 1.0 / fps if fps else 0.0
        self._next = 0.0

    def wait(self) -> None:
        if not self.period:
            return
        now = time.monotonic()
        if self._next > now:
            time.sleep(self._next - now)
        self._next = max(self._next + self.period, now) if self._next else now + self.period

    def restart(self) -> None:
        self._next = 0.0


class OpenCVSource:
    """A V4L2 camera (index or device), a network stream or a video file, through cv2.VideoCapture."""

    def __init__(self, source: str, config: CameraConfig) -> None:
        self.name = source
        self._config = config
        self._is_file = not (source.isdigit() or source.startswith("/dev/") or source.startswith(STREAM_PREFIXES))
        self._capture: cv2.VideoCapture | None = None
        self._pacer = _Pacer(None)

    @property
    def is_file(self) -> bool:
        """Whether this is a finite video file (paced, may loop, ends)."""
        return self._is_file

    def open(self) -> None:
        target: int | str = int(self.name) if self.name.isdigit() else self.name
        if self._is_file and not Path(self.name).is_file():
            raise CaptureError(f"{self.name}: video file not found")
        device = (f"/dev/video{target}" if isinstance(target, int)
                  else self.name if self.name.startswith("/dev/") else None)
        if device is not None and not Path(device).exists():
            raise CaptureError(f"{self.name}: no camera at {device} (none connected? camera.source names the camera)")
        capture = cv2.VideoCapture(target, cv2.CAP_V4L2) if isinstance(target, int) else cv2.VideoCapture(target)
        if not capture.isOpened():
            capture.release()
            raise CaptureError(f"{self.name}: {self._why_not_opened(device)}")
        if not self._is_file:
            if self._config.width and self._config.height:
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, self._config.width)
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self._config.height)
            if self._config.fps:
                capture.set(cv2.CAP_PROP_FPS, self._config.fps)
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if self._is_file and self._config.realtime:
            fps = capture.get(cv2.CAP_PROP_FPS)
            self._pacer = _Pacer(fps if 0 < fps < 1000 else 25.0)
        else:
            self._pacer = _Pacer(None)
        self._capture = capture

    def _why_not_opened(self, device: str | None) -> str:
        if self._is_file:
            return "cannot be read as a video (damaged, or a format OpenCV cannot decode)"
        if device is not None:
            return (f"cannot open the camera at {device} (in use by another program? not allowed to this user: "
                    "is it in the video group?)")
        return "cannot open the stream (check the URL, the network and the credentials)"

    def read(self) -> np.ndarray | None:
        if self._capture is None:
            raise CaptureError(f"{self.name}: not open")
        self._pacer.wait()
        ok, image = self._capture.read()
        if ok and image is not None:
            return image
        if not self._is_file:
            raise CaptureError(f"{self.name}: camera or stream stopped delivering frames")
        if self._config.loop:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._pacer.restart()
            ok, image = self._capture.read()
            if ok and image is not None:
                return image
        return None

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class ImageFolderSource:
    """The images of a folder in name order, as frames (paced at ``camera.fps``, default 1 a second)."""

    def __init__(self, folder: Path, config: CameraConfig) -> None:
        self.name = str(folder)
        self._folder = folder
        self._config = config
        self._paths: list[Path] = []
        self._position = 0
        self._pacer = _Pacer(None)

    def open(self) -> None:
        if not self._folder.is_dir():
            raise CaptureError(f"{self._folder}: image folder not found")
        self._paths = sorted(p for p in self._folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._paths:
            raise CaptureError(f"{self._folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in the folder")
        self._position = 0
        self._pacer = _Pacer((self._config.fps or 1.0) if self._config.realtime else None)

    def read(self) -> np.ndarray | None:
        while True:
            if self._position >= len(self._paths):
                if not self._config.loop:
                    return None
                self._position = 0
            path = self._paths[self._position]
            self._position += 1
            try:  # a FIFO named x.jpg must not hang the camera thread
                data = np.frombuffer(read_regular_file(path, MAX_IMAGE_FILE_BYTES), np.uint8)
            except OSError as error:
                log.warning("%s: cannot read (%s), skipped", path, error.strerror or error)
                continue
            image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
            if image is None:
                log.warning("%s: not a readable image, skipped", path)
                continue
            self._pacer.wait()
            return image

    def close(self) -> None:
        self._paths = []


class Picamera2Source:
    """The Raspberry Pi camera through picamera2 (from apt), imported only when used."""

    def __init__(self, config: CameraConfig) -> None:
        self.name = "picamera2"
        self._config = config
        self._camera = None

    def open(self) -> None:
        try:
            from picamera2 import Picamera2  # type: ignore[import-not-found]
        except ImportError:
            raise CaptureError("picamera2 is not installed (on Raspberry Pi OS: sudo apt install python3-picamera2, "
                               "and create the venv with --system-site-packages)") from None
        try:
            camera = Picamera2()
            size = (self._config.width or 640, self._config.height or 480)
            controls = {"FrameRate": self._config.fps} if self._config.fps else {}
            # RGB888 is laid out B, G, R in memory: OpenCV's BGR, no conversion needed
            camera.configure(camera.create_video_configuration(main={"size": size, "format": "RGB888"},
                                                               controls=controls))
            camera.start()
        except Exception as error:  # picamera2 raises RuntimeError, OSError, IndexError for an absent camera
            raise CaptureError(f"picamera2: cannot start the camera ({error})") from None
        self._camera = camera

    def read(self) -> np.ndarray | None:
        if self._camera is None:
            raise CaptureError("picamera2: not open")
        try:
            return np.ascontiguousarray(self._camera.capture_array("main")[:, :, :3])
        except Exception as error:
            raise CaptureError(f"picamera2: capture failed ({error})") from None

    def close(self) -> None:
        if self._camera is not None:
            try:
                self._camera.close()
            finally:
                self._camera = None


def open_source(config: CameraConfig) -> FrameSource:
    """The FrameSource ``config.source`` names (not yet opened); CaptureError, a configuration mistake,
    when it names a video file that does not exist (a camera may come later, a file will not)."""
    source = config.source.strip()
    if source == "picamera2":
        return Picamera2Source(config)
    if Path(source).is_dir():
        return ImageFolderSource(Path(source), config)
    opened = OpenCVSource(source, config)
    if opened.is_file and not Path(source).is_file():
        raise CaptureError(f"camera.source {source!r}: no such video file or image folder (nor picamera2, a "
                           "camera index or /dev/ device, or a stream URL)")
    return opened


class CaptureThread:
    """Reads a source on a thread; :meth:`latest` hands out the newest frame only."""

    def __init__(self, source: FrameSource, max_backoff_s: float = 30.0, lossless: bool = False,
                 clock: Callable[[], float] = time.time, health: Health | None = None) -> None:
        self.source = source
        self.max_backoff_s = max_backoff_s
        self.lossless = lossless  # wait for each frame to be taken (benchmarks on files): nothing dropped
        self._clock = clock
        self._condition = threading.Condition()
        self._slot: Frame | None = None
        self._stop = threading.Event()
        self._health = health or Health()
        self._thread: threading.Thread | None = None
        self.captured = 0
        self.dropped = 0
        self.failures = 0
        self.state = "starting"  # opening, running, failed: <reason> (retrying in Ns), ended, stopped
        self.ended = False

    def start(self) -> None:
        """Open the source and start capturing (failures are retried on the thread, which is supervised)."""
        self._thread = start_thread("capture", self._run, self._health, log)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop capturing and release the source."""
        self._stop.set()
        with self._condition:
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def latest(self, timeout: float | None = None) -> Frame | None:
        """Take the newest frame not taken yet, waiting up to ``timeout`` s; None when there is none
        (or the source ended or the thread stopped)."""
        with self._condition:
            if self._slot is None and not self.ended and not self._stop.is_set():
                self._condition.wait(timeout)
            frame, self._slot = self._slot, None
            self._condition.notify_all()
            return frame

    @property
    def finished(self) -> bool:
        """The source ended (a video file or folder without loop) and its last frame was taken."""
        with self._condition:
            return self.ended and self._slot is None

    def _publish(self, image: np.ndarray) -> None:
        with self._condition:
            while self.lossless and self._slot is not None and not self._stop.is_set():
                self._condition.wait(0.5)
            self.captured += 1
            if self._slot is not None:
                self.dropped += 1
            self._slot = Frame(image, self.captured, self._clock())
            self._condition.notify_all()

    def _run(self) -> None:
        backoff = 1.0
        reported = ""  # the failure last logged as a warning: a camera that stays absent is reported once
        while not self._stop.is_set():
            self.state = "opening"
            try:
                self.source.open()
                self.state = "running"
                log.info("camera %s opened%s", self.source.name,
                         f" after {self.failures} failed attempts" if self.failures else "")
                reported = ""
                while not self._stop.is_set():
                    image = self.source.read()
                    if image is None:
                        self._end()
                        return
                    self._publish(image)
                    backoff = 1.0
            except Exception as error:  # a camera may fail in any way; it is reported and reopened
                self.failures += 1
                reason = str(error) if isinstance(error, CaptureError) else f"{type(error).__name__}: {error}"
                self.state = f"failed: {reason} (retrying in {backoff:g} s)"
                if reason != reported:
                    log.warning("camera failed: %s; retrying in the background every 1 to %g s, reported again "
                                "only if the reason changes (the status shows how it stands)", reason, self.max_backoff_s)
                    reported = reason
                else:
                    log.debug("camera %s", self.state)
            finally:
                self._close_source()
            if self._stop.wait(backoff):
                break
            backoff = min(backoff * 2, self.max_backoff_s)
        self.state = "stopped"

    def _end(self) -> None:
        self.state = "ended"
        log.info("camera %s: end of the video or folder", self.source.name)
        with self._condition:
            self.ended = True
            self._condition.notify_all()

    def _close_source(self) -> None:
        try:
            self.source.close()
        except Exception as error:
            log.warning("camera %s: error while closing (%s)", self.source.name, error)
