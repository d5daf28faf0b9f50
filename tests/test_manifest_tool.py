"""scripts/manifest_tool.py records calibration results in the manifest (on a copy here)."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import manifest_tool  # noqa: E402

from edge.runtime.model_files import load_manifest  # noqa: E402


@pytest.fixture()
def manifest_copy(tmp_path, models_dir, monkeypatch) -> Path:
    target = tmp_path / "models"
    target.mkdir()
    shutil.copy(models_dir / "manifest.json", target / "manifest.json")
    monkeypatch.setattr(manifest_tool, "MANIFEST", target / "manifest.json")
    return target


def test_cli_records_threshold_alignment_and_flip_fusion(manifest_copy):
    name = "facenet-casia-int8"
    assert manifest_tool.main(["--match-threshold", f"{name}=0.51234", "--alignment", f"{name}=margin",
                               "--flip-fusion", f"{name}=yes", "--default-embedder", name]) == 0
    manifest = load_manifest(manifest_copy)
    spec = manifest.models[name]
    assert (spec.match_threshold, spec.alignment, spec.flip_fusion) == (0.5123, "margin", True)
    assert manifest.default_embedder == name


@pytest.mark.parametrize("argv", [
    ["--match-threshold", "mtcnn-pnet-int8=0.5"],  # not an embedder
    ["--match-threshold", "nobody=0.5"],
    ["--match-threshold", "facenet-casia-int8=1.5"],
    ["--match-threshold", "facenet-casia-int8"],
    ["--alignment", "facenet-casia-int8=sideways"],
    ["--flip-fusion", "facenet-casia-int8=maybe"],
])
def test_bad_requests_are_refused_and_change_nothing(manifest_copy, argv):
    before = (manifest_copy / "manifest.json").read_text()
    with pytest.raises(SystemExit):
        manifest_tool.main(argv)
    assert (manifest_copy / "manifest.json").read_text() == before
    json.loads(before)
