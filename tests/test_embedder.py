"""The embedder's recognition settings come from the manifest: alignment and flip fusion."""
from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from edge.vision.embedder import FaceEmbedder
from edge.errors import ModelFileError
from edge.runtime.model_files import ALIGNMENTS, load_manifest


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, (3, 160, 160, 3), dtype=np.uint8)


def test_flip_fusion_is_the_normalised_sum_with_the_mirror_image(manifest, faces):
    spec = dataclasses.replace(manifest.embedder(), flip_fusion=False)
    embedder = FaceEmbedder(spec, num_threads=2)
    plain = embedder.embed(faces)
    mirrored = embedder.embed(np.ascontiguousarray(faces[:, :, ::-1]))
    fused = embedder.embed(faces, flip_fusion=True)
    expected = (plain + mirrored) / np.linalg.norm(plain + mirrored, axis=1, keepdims=True)
    assert fused.shape == plain.shape and fused.dtype == np.float32
    assert np.allclose(fused, expected, atol=1e-5)
    assert np.allclose(np.linalg.norm(fused, axis=1), 1.0, atol=1e-5)
    by_manifest = FaceEmbedder(dataclasses.replace(spec, flip_fusion=True), num_threads=2)
    assert np.allclose(by_manifest.embed(faces), fused, atol=1e-6)
    assert np.allclose(by_manifest.embed(faces, flip_fusion=False), plain, atol=1e-6)


def test_every_embedder_declares_a_known_alignment_and_a_threshold(manifest):
    for spec in manifest.models.values():
        if spec.kind == "embedder":
            assert spec.alignment in ALIGNMENTS, spec.name
            assert isinstance(spec.flip_fusion, bool), spec.name
            assert spec.match_threshold is not None and 0.0 < spec.match_threshold < 1.0, spec.name


def test_alignment_and_flip_fusion_default_when_absent_and_bad_ones_are_refused(tmp_path, models_dir):
    target = tmp_path / "models"
    shutil.copytree(models_dir, target, ignore=shutil.ignore_patterns("__pycache__", "*.py", "*.tflite"))
    path = target / "manifest.json"
    raw = json.loads(path.read_text())
    name = raw["defaults"]["embedder"]
    for key in ("alignment", "flip_fusion"):
        raw["models"][name].pop(key, None)
    path.write_text(json.dumps(raw))
    spec = load_manifest(target).models[name]
    assert (spec.alignment, spec.flip_fusion) == ("margin", False)
    raw["models"][name]["alignment"] = "sideways"
    path.write_text(json.dumps(raw))
    with pytest.raises(ModelFileError, match="alignment 'sideways'"):
        load_manifest(target)
