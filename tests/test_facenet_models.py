"""The shipped int8 FaceNet embedders reproduce their float source models (no TensorFlow).

Fixture: tests/fixtures/facenet_parity.npz, recorded by scripts/export_facenet.py: L2-normalised
embeddings of each float source model (Keras h5 rebuild, frozen graph, recovered float graph) on
face crops of the 5-celebrity val photos, rebuilt here with tests/parity_inputs.py.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.runtime.model_files import ModelSpec
from edge.runtime.tflite_model import TFLiteModel
from parity_inputs import crop_resized, normalise_fixed, normalise_prewhiten, read_rgb

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "facenet_parity.npz"
NAMES = ("keras-msceleb", "casia", "vggface2")
MIN_COSINE = 0.995  # int8 vs float source, on every face (export run: worst 0.9956-0.9967)
NORM_TOLERANCE = 1e-3
NORMALISERS = {"fixed": normalise_fixed, "prewhiten": normalise_prewhiten}


@pytest.fixture(scope="module")
def parity() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as data:
        return dict(data)


@pytest.fixture(scope="module")
def crops(parity, celebrities) -> np.ndarray:
    """uint8 [N,160,160,3] face crops described by the fixture."""
    size = tuple(int(v) for v in parity["size"])
    return np.stack([crop_resized(read_rgb(celebrities / str(photo)), tuple(box), size)
                     for photo, box in zip(parity["photos"], parity["boxes"])])


def embed(spec: ModelSpec, batch: np.ndarray) -> np.ndarray:
    """Embeddings of ``batch`` from a shipped model in one invocation."""
    return TFLiteModel(spec).run(batch)[spec.embedding_size]


@pytest.mark.parametrize("name", NAMES)
def test_int8_embedder_matches_float_source(parity, crops, manifest, name):
    spec = manifest.models[f"facenet-{name}-int8"]
    normalization = str(parity[f"{name}__normalization"])
    reference = parity[f"{name}__embeddings"].astype(np.float32)
    assert (spec.normalization, spec.embedding_size) == (normalization, reference.shape[1])
    batch = NORMALISERS[normalization](crops).astype(np.float32)
    got = embed(spec, batch)
    assert got.shape == reference.shape
    norms = np.linalg.norm(got, axis=1)
    assert np.all(np.abs(norms - 1) <= NORM_TOLERANCE), f"{name}: norms {norms.min():.4f}..{norms.max():.4f}"
    cosines = np.sum(got * reference, axis=1) / np.linalg.norm(reference, axis=1) / norms
    worst = int(np.argmin(cosines))
    assert cosines[worst] >= MIN_COSINE, f"{name}: cosine {cosines[worst]:.4f} on {parity['photos'][worst]}"


@pytest.mark.parametrize("name", NAMES)
def test_int8_embedder_separates_people(parity, crops, manifest, name):
    """Each face is on average closer to the other photos of its person than to any other person."""
    normalization = str(parity[f"{name}__normalization"])
    batch = NORMALISERS[normalization](crops).astype(np.float32)
    got = embed(manifest.models[f"facenet-{name}-int8"], batch)
    similarity = got @ got.T
    people = np.array([str(photo).split("/")[1] for photo in parity["photos"]])
    for i, person in enumerate(people):
        others = np.arange(len(people)) != i
        own = similarity[i, others & (people == person)].mean()
        closest_other = max(similarity[i, people == other].mean() for other in set(people) - {person})
        assert own > closest_other, f"{name}: {parity['photos'][i]} is closer to another person"
