"""Device tuning: the real models timed on this machine, the rule that picks from the timings, the stored
choice reused while the device is the same, and explicit settings winning over it."""
from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from edge.config import config_from_dict
from edge.vision.detector import resolve_quantization
from edge.vision.device_tuning import (ModelChoice, Timing, Tuning, chosen, decide, device_tuning, measure,
                                       thread_counts)


def config(tmp_path, **sections):
    """A configuration whose tuning is stored under ``tmp_path`` and timed quickly (a small frame, short budget)."""
    raw = {"camera": {"width": 320, "height": 240}, "tuning": {"file": str(tmp_path / "tuning.json"), "budget_s": 0.2,
                                                               "max_threads": 1},
           "liveness": {"enabled": False}}
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return config_from_dict(raw)


def timing(model, variant, threads, ms):
    return Timing(model, variant, threads, ms, runs=5)


@pytest.mark.parametrize("int8_ms, expected", [(8.0, "int8"), (8.5, "float32"), (12.0, "float32")])
def test_int8_only_when_clearly_faster(int8_ms, expected):
    """int8 costs tracking recall (95.8 against 98.4%): it is chosen only at 1.25x float32's speed or more."""
    timings = [timing("detector", "float32", 1, 10.0), timing("detector", "int8", 1, int8_ms)]
    assert decide(timings).detector_quantization == expected


def test_the_fewest_threads_within_ten_percent_of_the_fastest():
    timings = [timing("detector", "float32", n, ms) for n, ms in ((1, 20.0), (2, 10.5), (3, 9.8), (4, 10.0))]
    timings += [timing("embedder", "int8", n, ms) for n, ms in ((1, 8.0), (2, 4.0), (4, 3.0))]
    choice = decide(timings)
    assert (choice.detector_quantization, choice.detector_threads) == ("float32", 2)  # 10.5 is within 10% of 9.8
    assert choice.embedder_threads == 4  # 4.0 is not within 10% of 3.0
    assert (choice.liveness_quantization, choice.liveness_threads) == ("float32", 2)  # not timed: the defaults


def test_the_thread_counts_tried_go_up_to_the_cpus():
    assert thread_counts(1) == [1]
    counts = thread_counts(None)
    assert counts[0] == 1 and counts == sorted(set(counts)) and counts[-1] >= 1


def test_measured_on_the_real_models_with_a_table_of_every_candidate(tmp_path):
    tuning = measure(config(tmp_path, tuning={"max_threads": 2}, liveness={"enabled": True}))
    threads = thread_counts(2)
    candidates = {(t.model, t.variant, t.threads) for t in tuning.timings}
    assert candidates == ({("detector", v, n) for v in ("float32", "int8") for n in threads}
                          | {("embedder", "int8", n) for n in threads}
                          | {("liveness", v, n) for v in ("float32", "int8") for n in threads})
    assert all(t.ms > 0 and t.runs >= 3 for t in tuning.timings)
    detector = [t for t in tuning.timings if t.model == "detector"]
    assert all(0 < t.tracking_ms < t.full_ms for t in detector)  # the tracking pass skips the pyramid
    assert tuning.choice == decide(tuning.timings)
    table = tuning.table()
    assert "| detector | float32 | 1 |" in table and "| facenet-vggface2-int8 | int8 |" in table
    assert f"chosen: {tuning.choice.describe()}" in table and tuning.device["cpu"] in table
    assert Tuning.from_json(tuning.to_json()) == tuning
    assert set(tuning.device["models"]) >= {"mtcnn-pnet-fp32", "mtcnn-pnet-int8", "facenet-vggface2-int8",
                                            "antispoof-minifasnetv2-int8"}


def test_stored_and_reused_while_the_device_and_models_stay(tmp_path, caplog):
    caplog.set_level(logging.INFO, "edge.vision.device_tuning")
    settings = config(tmp_path)
    path = settings.tuning.file
    first = device_tuning(settings)
    assert path.exists() and [p.name for p in tmp_path.iterdir()] == ["tuning.json"]  # no temporary file left
    assert Tuning.from_json(path.read_text()) == first
    stored = path.stat().st_mtime_ns
    assert device_tuning(settings) == first and path.stat().st_mtime_ns == stored
    assert "device tuning from" in caplog.text

    raw = json.loads(path.read_text())
    raw["device"]["models"]["mtcnn-pnet-int8"] = "0" * 64  # as if the int8 P-Net had been replaced since
    path.write_text(json.dumps(raw))
    caplog.clear()
    again = device_tuning(settings)
    assert "measured on another models" in caplog.text
    assert again.device == first.device and Tuning.from_json(path.read_text()) == again

    bigger = config(tmp_path, camera={"width": 640, "height": 480})  # another camera size: timed again
    assert device_tuning(bigger).device["frame"] == [640, 480]


def test_a_corrupt_file_is_measured_again(tmp_path, caplog):
    settings = config(tmp_path)
    settings.tuning.file.write_text("{not json")
    assert device_tuning(settings) is not None
    assert "not a usable device tuning" in caplog.text
    assert Tuning.from_json(settings.tuning.file.read_text()).device["frame"] == [320, 240]


def test_a_tuning_that_cannot_be_stored_applies_to_the_run(tmp_path, caplog):
    (tmp_path / "plain-file").write_text("")
    settings = config(tmp_path, tuning={"file": str(tmp_path / "plain-file" / "tuning.json")})
    assert device_tuning(settings) is not None
    assert "cannot store the device tuning" in caplog.text and "applies to this run only" in caplog.text


def test_no_tuning_when_disabled(tmp_path):
    settings = config(tmp_path, tuning={"enabled": False})
    assert device_tuning(settings) is None and not settings.tuning.file.exists()


def test_explicit_settings_win_over_the_tuning(tmp_path):
    tuned = Tuning(device={}, timings=(), choice=ModelChoice("int8", 4, 3, "int8", 1), measured_at="", seconds=0,
                   load=0)
    assert chosen(config(tmp_path, liveness={"quantization": "auto"}), tuned) == tuned.choice
    explicit = config(tmp_path, detector={"quantization": "float32", "threads": 1}, recognition={"threads": 2},
                      liveness={"threads": 2})
    assert chosen(explicit, tuned) == ModelChoice("float32", 1, 2, "float32", 2)  # liveness float32 is the default


def test_without_a_tuning_auto_follows_the_cpu_and_threads_are_2(tmp_path):
    assert chosen(config(tmp_path), None) == ModelChoice(resolve_quantization("auto"), 2, 2, "float32", 2)


def test_edge_facerec_tune_prints_the_table_and_stores_it(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(f"camera: {{width: 320, height: 240}}\nliveness: {{enabled: false}}\n"
                    f"tuning: {{file: '{tmp_path / 'tuning.json'}', budget_s: 0.2, max_threads: 1}}\n")
    result = subprocess.run([sys.executable, "-m", "edge.commands.facerec", "--config", str(path), "--tune"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "| model | variant | threads | ms |" in result.stdout and "| detector | int8 | 1 |" in result.stdout
    assert "chosen: detector " in result.stdout and f"stored in {tmp_path / 'tuning.json'}" in result.stdout
    assert Tuning.from_json((tmp_path / "tuning.json").read_text()).device["frame"] == [320, 240]
    assert "Traceback" not in result.stderr
