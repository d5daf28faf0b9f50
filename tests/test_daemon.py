"""edge-facerec as a process: READY and WATCHDOG to systemd, SIGHUP reloads the gallery, SIGTERM exits 0."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from daemon_support import small_gallery, val_photo
from edge.commands.demo import make_clip
from edge.recognition.gallery import save


class Lines:
    """Collects a stream's lines on a thread."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=lambda: [self.lines.append(line.rstrip("\n")) for line in stream],
                                        daemon=True)
        self._thread.start()

    def join(self, timeout: float = 10.0) -> None:
        """Wait until the stream has ended (the process exited) and every line is in."""
        self._thread.join(timeout)

    def wait_for(self, text: str, timeout: float = 30.0, after: int = 0) -> str:
        """The first line containing ``text`` (skipping the first ``after`` such lines), waiting for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in list(self.lines) if text in line]
            if len(found) > after:
                return found[after]
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not seen in {self.lines[-20:]}")


class Datagrams:
    """Receives a socket's datagrams on a thread, as systemd does (unread, a full queue blocks the sender)."""

    def __init__(self, sock: socket.socket) -> None:
        self.messages: list[str] = []
        sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._receive, args=(sock,), daemon=True)
        self._thread.start()

    def _receive(self, sock: socket.socket) -> None:
        while sock.fileno() != -1:
            try:
                self.messages.append(sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:  # closed by the test
                return

    def wait_for(self, prefix: str, timeout: float = 30.0) -> list[str]:
        """The messages up to the first one starting with ``prefix``, waiting for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = list(self.messages)
            found = [index for index, message in enumerate(messages) if message.startswith(prefix)]
            if found:
                return messages[:found[0] + 1]
            time.sleep(0.05)
        raise AssertionError(f"{prefix!r} not among {self.messages[-10:]}")


@pytest.fixture(scope="module")
def setup(celebrities, tmp_path_factory):
    folder = tmp_path_factory.mktemp("daemon")
    clip = make_clip([val_photo(celebrities, "ben_afflek")], folder / "ben.mp4", fps=10, show_s=2, gap_s=0)
    only_elton = small_gallery(celebrities, folder / "elton", ("elton_john",), photos_each=2)
    both = small_gallery(celebrities, folder / "both", ("ben_afflek", "elton_john"), photos_each=2)
    return folder, clip, only_elton, both


def test_ready_watchdog_reload_and_stop(setup):
    folder, clip, only_elton, both = setup
    gallery = folder / "gallery.npz"
    save(only_elton, gallery)
    config = folder / "config.yaml"
    config.write_text(f"device: {{name: test-device}}\n"
                      f"camera: {{name: door, source: '{clip}', loop: true}}\n"
                      f"recognition: {{gallery: '{gallery}'}}\n"
                      f"events: {{status_interval_s: 1.0}}\n"
                      f"tuning: {{file: '{folder / 'tuning.json'}', budget_s: 0.2}}\n")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(folder / "notify.sock"))
    environ = dict(os.environ, NOTIFY_SOCKET=str(folder / "notify.sock"), WATCHDOG_USEC="1000000")
    process = subprocess.Popen([sys.executable, "-m", "edge.commands.facerec", "--config", str(config)], env=environ,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = Lines(process.stdout), Lines(process.stderr)
        datagrams = Datagrams(notify)
        messages = datagrams.wait_for("WATCHDOG=1")
        assert any(m.startswith("READY=1") for m in messages)
        assert "device tuning measured" in stderr.wait_for("device tuning")  # the first start times the models
        assert messages.index(next(m for m in messages if m.startswith("READY=1"))) < len(messages) - 1
        unknown = json.loads(stdout.wait_for('"kind":"unknown"'))
        assert unknown["device"] == "test-device" and unknown["camera"] == "door" and unknown["person_id"] is None

        gallery.write_bytes(b"not a gallery")
        process.send_signal(signal.SIGHUP)
        assert "corrupt" in stderr.wait_for("gallery not reloaded, keeping the previous one")
        save(both, gallery)
        process.send_signal(signal.SIGHUP)
        stderr.wait_for("gallery reloaded: 2 enrolled people")
        recognized = json.loads(stdout.wait_for('"kind":"recognized"'))
        assert recognized["name"] == "Ben Afflek" and 0.5 <= recognized["score"] <= 1
        assert json.loads(stdout.wait_for('"type":"presence"'))["state"] == "present"
        statuses = sum("status {" in line for line in stderr.lines)  # the ones before this recognition
        status = json.loads(stderr.wait_for("status {", after=statuses).split("status ", 1)[1])
        assert status["frames"]["processed"] > 0 and status["rss_mb"] > 0 and "detect" in status["latency"]
        assert process.poll() is None  # still running after both reloads

        stopped = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
        assert time.monotonic() - stopped < 5
        assert datagrams.wait_for("STOPPING=1")
    finally:
        if process.poll() is None:
            process.kill()
        notify.close()
    assert not [line for line in stderr.lines if "Traceback" in line]


def test_a_finite_video_ends_the_daemon_with_status_0(setup):
    folder, clip, only_elton, _ = setup
    config = folder / "once.yaml"
    config.write_text(f"camera: {{source: '{clip}', realtime: false}}\nrecognition: {{gallery: '{folder / 'none.npz'}'}}\n"
                      "tuning: {enabled: false}\n")
    result = subprocess.run([sys.executable, "-m", "edge.commands.facerec", "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "no gallery yet, every face is unknown" in result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["kind"] for e in events] == ["unknown"]
    statuses = [json.loads(line.split("status ", 1)[1]) for line in result.stderr.splitlines() if "status {" in line]
    final = statuses[-1]
    assert final["frames"] == {"captured": 20, "processed": 20, "dropped": 0, "failed": 0} and final["camera"] == "ended"
    # the motion gate searched the first frame for what moved (everything: it is learnt), then followed the face
    assert final["detection"] == {"calls": 20, "skipped": 0, "by_reason": {"motion": 1, "tracking": 19}}
    assert statuses[0]["camera"] in ("starting", "opening") and statuses[0]["frames"]["processed"] == 0, \
        "a status at start, so a new process's figures replace the previous one's at once"
    assert len(statuses) >= 3, "and one when the camera ended, long before the 60 s interval"


def test_camera_on_the_command_line_replaces_the_configured_one_and_events_can_be_read(setup):
    folder, clip, _, both = setup
    gallery = folder / "override-gallery.npz"
    save(both, gallery)
    config = folder / "override.yaml"
    config.write_text(f"camera: {{source: '97', realtime: false}}\nrecognition: {{gallery: '{gallery}'}}\n"
                      "tuning: {enabled: false}\n")
    result = subprocess.run([sys.executable, "-m", "edge.commands.facerec", "--config", str(config),
                             "--camera", str(clip), "--readable"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"configuration {config}, gallery {gallery}" in result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and not lines[0].startswith("{")  # readable, not JSON
    assert lines[0].split()[1:3] == ["recognized", "Ben"] and lines[1].split()[1:4] == ["presence", "Ben", "Afflek"]


def test_a_missing_camera_is_one_warning_without_the_libraries_own_lines(tmp_path):
    """A stream nobody serves: FFmpeg's "[tcp @ ...] Connection refused", OpenCV's "[ WARN:0@...]" and
    TFLite's "Created ... XNNPACK delegate" stay off the terminal; the daemon says it once, naming it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        source = f"rtsp://127.0.0.1:{probe.getsockname()[1]}/door"
    config = tmp_path / "config.yaml"
    config.write_text(f"log_level: debug\ncamera: {{source: '{source}', reopen_max_backoff_s: 1}}\n"
                      f"recognition: {{gallery: '{tmp_path / 'none.npz'}'}}\ntuning: {{enabled: false}}\n")
    process = subprocess.Popen([sys.executable, "-m", "edge.commands.facerec", "--config", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stderr = Lines(process.stderr)
        warning = stderr.wait_for("WARNING edge.daemon.capture: camera failed")
        stderr.wait_for("DEBUG edge.daemon.capture: camera failed")  # retried, not reported again
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        stderr.join()
    finally:
        if process.poll() is None:
            process.kill()
    assert f"{source}: cannot open the stream" in warning and "retrying in the background" in warning
    assert sum("WARNING edge.daemon.capture: camera failed" in line for line in stderr.lines) == 1
    assert not [line for line in stderr.lines if line.startswith(("[", "INFO: Created TensorFlow Lite"))], stderr.lines
