"""edge-facerec: the daemon. Wires camera, models, gallery, pipeline, sinks, signals and systemd.

Events go to stdout as JSON lines (docs/events.md), the log to stderr. Without --config it reads
/etc/edge-facerec/config.yaml when running as the service (as root, or where that file exists),
else ~/.config/edge-facerec/config.yaml when it exists, else it runs on the built-in defaults
(camera 0; the gallery in /var/lib/edge-facerec for the service, else in ~/.local/state/edge-facerec).

SIGTERM/SIGINT: stop the camera, finish the frame in hand, flush the sinks, exit 0.
SIGHUP: reload the gallery (a bad new gallery keeps the old one), the camera keeps running.
Under systemd (Type=notify): READY=1 once the models are loaded and the camera delivers
frames, WATCHDOG=1 only while frames are being processed and no supervised thread has stopped
(edge/supervision.py: the status ``state`` then says ``failed: ...`` and systemd restarts the
service when the watchdog runs out).
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import Config, default_config_path, load_config_or_defaults
from ..daemon.capture import CaptureThread, ImageFolderSource, OpenCVSource, open_source
from ..daemon.pipeline import Pipeline
from ..daemon.sd_notify import Notifier
from ..daemon.sinks import FanOutSink, StdoutSink
from ..daemon.status import PipelineStats
from ..errors import EdgeError
from ..events import EnrolledPerson, EventSink
from ..recognition.gallery import Gallery, GalleryError
from ..recognition.gallery import load as load_gallery
from ..recognition.matcher import Matcher, decision_threshold
from ..runtime.model_files import load_manifest
from ..runtime.native_logs import quiet_opencv
from ..supervision import Health
from ..vision.detector import DetectorSettings, MTCNNDetector
from ..vision.device_tuning import ModelChoice, chosen, device_tuning
from ..vision.liveness import LivenessChecker, liveness_specs
from ..vision.face_encoder import FaceEncoder
from ..vision.tracked_detection import TrackingDetector, TrackingSettings
from .tune import tune

log = logging.getLogger("edge-facerec")
TICK_S = 0.2  # how often the main thread looks at signals, the watchdog and the status timer
PASSING_CAMERA_STATES = ("starting", "opening")  # a change to these does not publish a status of its own


def build_sinks(config: Config, extra: list[EventSink], stdout: StdoutSink | None = None,
                health: Health | None = None) -> FanOutSink:
    """stdout (JSON lines unless ``stdout`` is given), the MQTT publisher when enabled (reporting to ``health``),
    and any ``extra`` sinks."""
    sinks: list[EventSink] = [stdout or StdoutSink(), *extra]
    if config.mqtt.enabled:
        try:
            from ..mqtt.publisher import MqttPublisher
        except ImportError as error:
            raise EdgeError(f"mqtt.enabled is true but the MQTT publisher is not available ({error})") from None
        sinks.append(MqttPublisher(config, health))
    return FanOutSink(sinks)


class Daemon:
    """Everything the service runs; :meth:`run` until stopped or a finite source ends."""

    def __init__(self, config: Config, extra_sinks: list[EventSink] | None = None,
                 notifier: Notifier | None = None, stop: threading.Event | None = None,
                 reload: threading.Event | None = None, stdout: StdoutSink | None = None,
                 choice: ModelChoice | None = None) -> None:
        self.config = config
        self.notifier = notifier or Notifier()
        self._stop = stop or threading.Event()
        self._reload = reload or threading.Event()
        self.health = Health()
        source = open_source(config.camera)  # first: a video file that is not there is a configuration mistake
        choice = choice or chosen(config)  # the models' variants and threads (main() passes the device tuning's)
        detector = MTCNNDetector(DetectorSettings(min_face_size=config.detector.min_face,
                                                  quantization=choice.detector_quantization,
                                                  num_threads=choice.detector_threads))
        finder = (TrackingDetector(detector, TrackingSettings(full_every=config.detector.full_every))
                  if config.detector.tracking else detector)
        manifest = load_manifest()
        spec = self.spec = manifest.embedder(config.recognition.embedder)
        self.encoder = FaceEncoder(spec, choice.embedder_threads)
        self.gallery = self._load_gallery(missing_ok=True)
        matcher = self._matcher(self.gallery)
        self.models = {"detector": f"mtcnn-{detector.quantization}", "embedder": spec.name}
        liveness = config.liveness
        checker = (LivenessChecker(liveness_specs(manifest, liveness.models, choice.liveness_quantization),
                                   choice.liveness_threads) if liveness.enabled else None)
        if checker is not None:
            self.models["liveness"] = "+".join(checker.names)
        self.sink = build_sinks(config, extra_sinks or [], stdout, self.health)
        self.stats = PipelineStats()
        self.pipeline = Pipeline(config, finder, self.encoder, matcher, self.sink, self.models, self.stats, checker,
                                 self.health)
        finite = isinstance(source, ImageFolderSource) or (isinstance(source, OpenCVSource) and source.is_file)
        self.capture = CaptureThread(source, config.camera.reopen_max_backoff_s,
                                     lossless=finite and not config.camera.realtime, health=self.health)
        self.final_status: dict[str, Any] | None = None
        self._camera_reported = ""  # the camera state word of the last status

    def request_stop(self) -> None:
        """Stop soon (signal-safe)."""
        self._stop.set()

    def status(self) -> dict[str, Any]:
        """The operator figures now."""
        return self.stats.snapshot(self.capture.captured, self.capture.dropped, self.capture.state,
                                   self.pipeline.presence.present, self.health.state)

    def run(self) -> int:
        """Capture and process until stopped (0), the source ends (0) or the pipeline fails (1)."""
        self.sink.people_changed(self._people())
        self.capture.start()
        self._report(self.status())  # at once: what the sinks show is this process's from the start
        log.info("models %s, threshold %.4f, %d enrolled people, camera %s", self.models, self.pipeline.matcher.threshold,
                 len(self.gallery.people), self.capture.source.name)
        if self._wait_for_camera():
            self.pipeline.start(self.capture)
            self.notifier.ready(f"camera {self.capture.state}, {len(self.gallery.people)} enrolled")
            log.info("ready")
            self._loop()
        return self._shutdown()

    def _wait_for_camera(self) -> bool:
        last_state = ""
        while not self._stop.is_set():
            if self.capture.captured > 0 or self.capture.ended:
                return True
            if self.capture.state != last_state:
                last_state = self.capture.state
                self.notifier.status(f"waiting for the camera: {last_state}")
            self._report_camera_change()
            self._stop.wait(TICK_S)
        return False

    def _loop(self) -> None:
        interval = self.config.events.status_interval_s
        next_status = time.monotonic() + interval
        pinged_at = 0
        unhealthy_reported = False
        while not self._stop.wait(TICK_S):
            if self._reload.is_set():
                self._reload.clear()
                self.reload_gallery()
            processed = self.stats.frames_processed
            if not self.health.alive:  # a supervised thread stopped: no more pings, systemd restarts us
                if not unhealthy_reported:
                    log.critical("%s: the watchdog is no longer pinged", self.health.state)
                    self.notifier.status(self.health.state)
                    unhealthy_reported = True
            elif processed > pinged_at and self.notifier.watchdog():
                pinged_at = processed
            if time.monotonic() >= next_status:
                next_status += interval
                self._report(self.status())
            self._report_camera_change()
            if not self.pipeline.running:
                break

    def reload_gallery(self) -> bool:
        """Load the gallery file again; keep the old one (and log one line) when the new one is unusable."""
        self.notifier.reloading()
        try:
            gallery = self._load_gallery(missing_ok=False)
            matcher = self._matcher(gallery)
        except GalleryError as error:
            log.error("gallery not reloaded, keeping the previous one: %s", error)
            self.notifier.ready()
            return False
        self.gallery = gallery
        self.pipeline.set_matcher(matcher)
        self.sink.people_changed(self._people())
        log.info("gallery reloaded: %d enrolled people, threshold %.4f", len(gallery.people), matcher.threshold)
        self.notifier.ready()
        return True

    def _matcher(self, gallery: Gallery) -> Matcher:
        """A matcher for ``gallery`` at the threshold for its size (or the configured one)."""
        recognition = self.config.recognition
        threshold = decision_threshold(self.spec, gallery, recognition.threshold, recognition.stranger_far)
        return Matcher(gallery, self.encoder.identity, threshold)

    def _load_gallery(self, missing_ok: bool) -> Gallery:
        path = self.config.recognition.gallery
        if missing_ok and not Path(path).exists():
            log.warning("%s: no gallery yet, every face is unknown (enroll people with edge-enroll; a running daemon "
                        "reads the gallery again on SIGHUP: systemctl reload edge-facerec for the service)", path)
            return Gallery(self.encoder.identity)
        return load_gallery(path)

    def _people(self) -> list[EnrolledPerson]:
        return [EnrolledPerson(p.id, p.name) for p in self.gallery.people]

    def _report_camera_change(self) -> None:
        """A status at once when the camera starts running, fails, ends or stops (not for each reopening)."""
        word = self.capture.state.split(":")[0]
        if word not in PASSING_CAMERA_STATES and word != self._camera_reported:
            self._report(self.status())

    def _report(self, status: dict[str, Any]) -> None:
        self._camera_reported = status["camera"].split(":")[0]
        log.info("status %s", json.dumps(status, separators=(",", ":")))
        self.sink.publish_status(status)
        frames = status["frames"]
        health = "" if status["state"] == "ok" else f"{status['state']}; "
        self.notifier.status(f"{health}{status['camera']}; {frames['processed']} frames processed, {status['fps']} fps")

    def _shutdown(self) -> int:
        self.notifier.stopping()
        self.capture.stop()
        self.pipeline.stop()
        self.final_status = self.status()
        self._report(self.final_status)
        self.sink.close()
        self.notifier.close()
        if self.pipeline.error is not None:
            return 1
        return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``edge-facerec``."""
    parser = argparse.ArgumentParser(prog="edge-facerec", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path,
                        help=f"YAML configuration (default {default_config_path()} when it exists, else the built-in "
                             f"defaults; every setting: config/config.example.yaml)")
    parser.add_argument("--camera", metavar="SOURCE",
                        help="camera.source instead of the configured one: a V4L2 index (0) or device (/dev/video0), "
                             "a video file, a folder of images, an rtsp:// or http(s):// URL, or picamera2")
    parser.add_argument("--readable", action="store_true", help="events as readable lines instead of JSON lines")
    parser.add_argument("--tune", action="store_true",
                        help="time the models' variants and threads on this device, store the choice (tuning.file), "
                             "print the table and exit")
    args = parser.parse_args(argv)
    try:  # a bad config, gallery or model: one line, exit status 2 (the unit does not restart on it)
        config, source = load_config_or_defaults(args.config)
        if args.camera is not None:
            config = replace(config, camera=replace(config.camera, source=args.camera))
        logging.basicConfig(level=config.log_level.upper(), stream=sys.stderr,
                            format="%(levelname)s %(name)s: %(message)s")
        log.info("configuration %s, gallery %s", source or f"built in (no {default_config_path()})",
                 config.recognition.gallery)
        quiet_opencv()  # the capture thread reports a failing camera itself, once
        if args.tune:
            return tune(config)
        stop, reload = threading.Event(), threading.Event()  # handlers first: a signal while models load is kept
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGHUP, lambda *_: reload.set())
        daemon = Daemon(config, stop=stop, reload=reload, stdout=StdoutSink(readable=True) if args.readable else None,
                        choice=chosen(config, device_tuning(config)))
    except EdgeError as error:
        print(f"edge-facerec: error: {error}", file=sys.stderr)
        return 2
    return daemon.run()


if __name__ == "__main__":
    sys.exit(main())
