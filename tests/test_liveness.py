"""Liveness on our detector's faces: the models' crop (shifted inside the frame, not clipped), our box
mapped to the box the models were trained on, the models averaged, and the daemon's events carrying it."""
from __future__ import annotations

import numpy as np
import pytest

from daemon_support import small_gallery, val_photo
from edge.commands.demo import Recogniser
from edge.config import Config
from edge.daemon.capture import Frame
from edge.daemon.pipeline import Pipeline
from edge.daemon.sinks import MemorySink
from edge.face import Face
from edge.recognition.matcher import Matcher, decision_threshold
from edge.vision.liveness import LivenessChecker, SpoofModel, crop, crop_box, liveness_specs, mapped_box

BOTH = ("minifasnetv2", "minifasnetv1se")


def test_the_crop_is_shifted_inside_the_image_and_capped_not_clipped():
    # a 100x100 face near the top-left corner of a 640x480 image, scale 2.7: a 270x270 crop shifted to (0, 0)
    assert crop_box(640, 480, (10, 5, 100, 100), 2.7) == (0, 0, 270, 270)
    # near the bottom-right corner: shifted back so that it ends on the last pixel
    assert crop_box(640, 480, (560, 400, 60, 60), 2.7) == (477, 317, 639, 479)
    # too large to fit: the scale is capped at (H-1)/h, the crop spans the full height
    x1, y1, x2, y2 = crop_box(640, 480, (200, 100, 200, 200), 4.0)
    assert (y1, y2) == (0, 479) and x2 - x1 == 479
    patch = crop(np.zeros((480, 640, 3), np.uint8), (10, 5, 100, 100), 2.7)
    assert patch.shape == (80, 80, 3) and patch.dtype == np.float32


def test_our_box_is_mapped_about_its_centre_and_moved_down():
    face = Face((100.0, 200.0, 200.0, 320.0), 0.99, np.zeros((5, 2), np.float32))
    assert mapped_box(face, (1.0, 1.0, 0.0)) == (100.0, 200.0, 100.0, 120.0)
    x, y, w, h = mapped_box(face, (1.2, 0.9, 0.05))
    assert (w, h) == pytest.approx((120.0, 108.0))
    assert (x + w / 2, y + h / 2) == pytest.approx((150.0, 260.0 + 6.0)), "centre kept, then 0.05 box heights lower"


def test_the_checker_averages_its_models_on_a_real_face(manifest, celebrities):
    image = val_photo(celebrities, "jerry_seinfeld")
    recogniser = Recogniser()
    faces = recogniser.detector.detect(image)
    assert faces
    specs = liveness_specs(manifest, BOTH, "float32")
    assert [s.box_mapping for s in specs] == [(1.154, 0.905, 0.059)] * 2, "the measured mapping, from the manifest"
    checker = LivenessChecker(specs, 1)
    scores = checker.score(image, faces)
    alone = [SpoofModel(spec, 1).live_probability(image, faces) for spec in specs]
    assert scores.shape == (len(faces),) and np.all((0 <= scores) & (scores <= 1))
    assert scores == pytest.approx((alone[0] + alone[1]) / 2, abs=1e-6)
    assert checker.names == ["antispoof-minifasnetv2-fp32", "antispoof-minifasnetv1se-fp32"]
    assert checker.score(image, []).shape == (0,)


def test_recognized_events_carry_liveness_and_unknown_ones_do_not(manifest, celebrities, tmp_path):
    recogniser = Recogniser()
    gallery = small_gallery(celebrities, tmp_path)
    matcher = Matcher(gallery, recogniser.encoder.identity, decision_threshold(recogniser.spec, gallery))
    checker = LivenessChecker(liveness_specs(manifest, BOTH, "float32"), 1)
    config = Config()
    sink = MemorySink()
    pipeline = Pipeline(config, recogniser.detector, recogniser.encoder, matcher, sink, {"detector": "mtcnn"},
                        liveness=checker)
    canvas = np.full((480, 640, 3), 90, np.uint8)
    known, stranger = canvas.copy(), canvas.copy()
    known[100:400, 100:300] = val_photo(celebrities, "ben_afflek")[:300, :200]
    stranger[100:300, 380:580] = val_photo(celebrities, "madonna")[:200, :200]
    for number, image in enumerate([known] * 6 + [canvas] * 30 + [stranger] * 12, 1):
        pipeline.process(Frame(image, number, 1000.0 + number * 0.1))
    recognized, unknown = sink.events
    assert recognized.kind == "recognized" and unknown.kind == "unknown" and unknown.liveness is None
    liveness = recognized.liveness
    assert liveness.frames == 3 and liveness.live == (liveness.score >= config.liveness.threshold)
    assert "liveness" in pipeline.stats.snapshot(0, 0, "running", [])["latency"]
