"""The capture thread hands out the newest frame only, counts drops, and survives a failing camera."""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.daemon.capture import CaptureError, CaptureThread, ImageFolderSource, OpenCVSource, Picamera2Source, open_source
from edge.config import CameraConfig

FRAMES = 30


def numbered_clip(path: Path, frames: int = FRAMES, fps: float = 30.0) -> Path:
    """A clip whose frame i is uniformly grey level 8 * i (readable back through compression)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), 8 * i, np.uint8))
    writer.release()
    return path


def level(frame) -> int:
    """The frame number a numbered clip's frame shows."""
    return round(float(frame.image.mean()) / 8)


def wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def take_all(capture: CaptureThread, pause: float = 0.0, timeout: float = 20.0) -> list[int]:
    """The level of every frame taken until the source is finished (fails instead of hanging)."""
    taken = []
    deadline = time.monotonic() + timeout
    while not capture.finished:
        assert time.monotonic() < deadline, f"source not finished after {timeout} s: {capture.state}"
        frame = capture.latest(timeout=1)
        if frame is not None:
            taken.append(level(frame))
            time.sleep(pause)
    return taken


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return numbered_clip(tmp_path_factory.mktemp("capture") / "numbered.mp4")


def test_a_slow_consumer_gets_the_newest_frame_and_the_rest_count_as_dropped(clip):
    capture = CaptureThread(OpenCVSource(str(clip), CameraConfig(source=str(clip), realtime=False)))
    capture.start()
    assert wait_for(lambda: capture.ended)  # nobody took anything while the whole clip was read
    frame = capture.latest(timeout=1)
    assert frame.number == FRAMES and level(frame) == FRAMES - 1
    assert capture.captured == FRAMES and capture.dropped == FRAMES - 1
    assert capture.latest(timeout=0.1) is None and capture.finished
    capture.stop()


def test_a_realtime_clip_is_paced_at_its_frame_rate(tmp_path):
    path = numbered_clip(tmp_path / "ten_fps.mp4", frames=10, fps=10.0)
    capture = CaptureThread(OpenCVSource(str(path), CameraConfig(source=str(path), realtime=True)))
    started = time.monotonic()
    capture.start()
    assert wait_for(lambda: capture.ended)
    assert 0.8 <= time.monotonic() - started <= 3.0  # 10 frames at 10 fps: about a second
    capture.stop()


def test_lossless_capture_hands_out_every_frame_in_order(clip):
    capture = CaptureThread(OpenCVSource(str(clip), CameraConfig(source=str(clip), realtime=False)), lossless=True)
    capture.start()
    assert take_all(capture, pause=0.005) == list(range(FRAMES)) and capture.dropped == 0
    capture.stop()


def test_a_video_that_appears_later_is_opened_on_retry(tmp_path, clip):
    path = tmp_path / "later.mp4"
    capture = CaptureThread(OpenCVSource(str(path), CameraConfig(source=str(path), realtime=False)),
                            max_backoff_s=1.0)
    capture.start()
    assert wait_for(lambda: capture.state.startswith("failed"), 3)
    assert "video file not found" in capture.state and "retrying" in capture.state
    path.write_bytes(clip.read_bytes())
    assert wait_for(lambda: capture.captured > 0, 5)
    assert capture.failures >= 1
    capture.stop()


class FailingOnce:
    """A real folder source that breaks once after two frames, as an unplugged camera would."""

    def __init__(self, source: ImageFolderSource) -> None:
        self.source = source
        self.name = source.name
        self.reads = 0
        self.opened = 0

    def open(self) -> None:
        self.opened += 1
        self.source.open()

    def read(self):
        self.reads += 1
        if self.reads == 3:
            raise OSError("device unplugged")
        return self.source.read()

    def close(self) -> None:
        self.source.close()


def test_a_camera_that_fails_is_reopened_and_the_failure_is_visible(tmp_path):
    for i in range(4):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((48, 64, 3), 8 * i, np.uint8))
    source = FailingOnce(ImageFolderSource(tmp_path, CameraConfig(source=str(tmp_path), realtime=False)))
    states = []
    capture = CaptureThread(source, max_backoff_s=1.0, lossless=True)
    watcher = threading.Thread(target=lambda: [states.append(capture.state) or time.sleep(0.01) for _ in range(150)])
    watcher.start()
    capture.start()
    taken = take_all(capture)
    watcher.join()
    capture.stop()
    assert source.opened == 2 and capture.failures == 1
    assert any("OSError: device unplugged" in s for s in states)
    assert taken == [0, 1, 0, 1, 2, 3]  # reopened from the start of the folder


def test_a_folder_skips_unreadable_images_with_a_warning(tmp_path, caplog):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "b.jpg").write_bytes(b"not a jpeg")
    source = ImageFolderSource(tmp_path, CameraConfig(source=str(tmp_path), realtime=False))
    source.open()
    assert source.read() is not None
    assert source.read() is None
    assert "b.jpg: not a readable image" in caplog.text


def test_sources_are_chosen_by_the_configured_name(tmp_path):
    assert isinstance(open_source(CameraConfig(source="picamera2")), Picamera2Source)
    assert isinstance(open_source(CameraConfig(source=str(tmp_path))), ImageFolderSource)
    camera = open_source(CameraConfig(source="0"))
    assert isinstance(camera, OpenCVSource) and not camera.is_file
    assert not open_source(CameraConfig(source="rtsp://192.0.2.1/stream")).is_file
    (tmp_path / "clip.mp4").write_bytes(b"")
    assert open_source(CameraConfig(source=str(tmp_path / "clip.mp4"))).is_file
    with pytest.raises(CaptureError, match="no such video file"):  # a configuration mistake: exit status 2
        open_source(CameraConfig(source=str(tmp_path / "absent.mp4")))


@pytest.mark.parametrize("source", ["/dev/video97", "97"])
def test_an_absent_camera_is_a_capture_error_naming_it(source):
    with pytest.raises(CaptureError, match=f"^{source}: no camera at /dev/video97 "):
        OpenCVSource(source, CameraConfig(source=source)).open()


def test_a_video_file_opencv_cannot_read_is_named_so(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\0" * 1000)
    with pytest.raises(CaptureError, match="broken.mp4: cannot be read as a video"):
        OpenCVSource(str(path), CameraConfig(source=str(path))).open()


def test_a_camera_that_stays_absent_is_reported_once_while_it_is_retried(tmp_path, caplog):
    missing = tmp_path / "absent.mp4"
    capture = CaptureThread(OpenCVSource(str(missing), CameraConfig(source=str(missing))), max_backoff_s=1.0)
    with caplog.at_level(logging.DEBUG, logger="edge.daemon.capture"):
        capture.start()
        assert wait_for(lambda: capture.failures >= 3, 15), capture.state
        capture.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"camera failed: {missing}: video file not found; retrying in the background")
    assert sum("video file not found" in r.getMessage() for r in caplog.records) >= 3  # each retry, at debug level


def test_picamera2_missing_is_one_line_saying_how_to_install_it():
    try:
        import picamera2  # noqa: F401
        pytest.skip("picamera2 is installed here")
    except ImportError:
        pass
    with pytest.raises(CaptureError, match="picamera2 is not installed .*apt install python3-picamera2"):
        Picamera2Source(CameraConfig(source="picamera2")).open()
