"""The shipped MTCNN TFLite models reproduce the mtcnn 1.0.0 Keras reference outputs (no TensorFlow).

Fixture: tests/fixtures/mtcnn_parity.npz, recorded by scripts/export_mtcnn.py from the package's own
Keras models on inputs rebuilt here with tests/parity_inputs.py from the 5-celebrity photos.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.runtime.model_files import ModelSpec
from edge.runtime.tflite_model import TFLiteModel
from parity_inputs import crop_resized, normalise_fixed, read_rgb

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "mtcnn_parity.npz"
KIND_BY_LAST_DIM = {2: "prob", 4: "reg", 10: "landmarks"}
FP32_ATOL = 1e-4
# int8 max abs diff to the float reference, measured on these inputs by the export run:
# P-Net prob 0.40 (a few cells near the 0.5 boundary; 99th percentile 0.095, mean 0.008), reg 0.081;
# R-Net prob 0.066, reg 0.034; O-Net prob 0.027, reg 0.024, landmarks 0.026. Bounds leave ~1.5x margin.
INT8_BOUNDS = {
    "pnet": {"prob": 0.6, "reg": 0.12},
    "rnet": {"prob": 0.1, "reg": 0.05},
    "onet": {"prob": 0.05, "reg": 0.04, "landmarks": 0.04},
}
PNET_INT8_PROB_P99 = 0.15
PNET_INT8_PROB_MEAN = 0.015


@pytest.fixture(scope="module")
def parity() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as data:
        return dict(data)


def run(spec: ModelSpec, batch: np.ndarray) -> dict[str, np.ndarray]:
    """Invoke a shipped model on ``batch``; outputs keyed by kind, found by last dimension."""
    return {KIND_BY_LAST_DIM[width]: value for width, value in TFLiteModel(spec).run(batch).items()}


def check(net: str, tag: str, got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    """Every reference output kind is present with its shape and within the tolerance of ``tag``."""
    assert set(got) == set(want)
    for kind, reference in want.items():
        assert got[kind].shape == reference.shape, kind
        bound = FP32_ATOL if tag == "fp32" else INT8_BOUNDS[net][kind]
        worst = float(np.abs(got[kind] - reference).max())
        assert worst <= bound, f"mtcnn_{net}_{tag} {kind}: max abs diff {worst:.4f} > {bound}"


@pytest.mark.parametrize("tag", ["fp32", "int8"])
def test_pnet_matches_reference_at_several_sizes(parity, celebrities, manifest, tag):
    model = manifest.models[f"mtcnn-pnet-{tag}"]
    prob_errors = []
    for i, photo in enumerate(parity["pnet_photos"]):
        image = read_rgb(celebrities / str(photo))
        full = (0, 0, image.shape[1], image.shape[0])
        for j, size in enumerate(parity["pnet_sizes"]):
            batch = normalise_fixed(crop_resized(image, full, tuple(int(v) for v in size)))[None]
            got = {kind: value[0] for kind, value in run(model, batch).items()}
            want = {kind: parity[f"pnet_{kind}_{i}_{j}"] for kind in ("prob", "reg")}
            check("pnet", tag, got, want)
            prob_errors.append(np.abs(got["prob"] - want["prob"]).ravel())
    if tag == "int8":
        spread = np.concatenate(prob_errors)
        assert np.percentile(spread, 99) <= PNET_INT8_PROB_P99
        assert spread.mean() <= PNET_INT8_PROB_MEAN


@pytest.mark.parametrize("tag", ["fp32", "int8"])
@pytest.mark.parametrize("net", ["rnet", "onet"])
def test_crop_networks_match_reference(parity, celebrities, manifest, net, tag):
    size = int(parity[f"{net}_size"])
    images = {str(p): read_rgb(celebrities / str(p)) for p in set(parity["crop_photos"])}
    batch = np.stack([normalise_fixed(crop_resized(images[str(p)], tuple(box), (size, size)))
                      for p, box in zip(parity["crop_photos"], parity["crop_boxes"])])
    kinds = ("prob", "reg", "landmarks") if net == "onet" else ("prob", "reg")
    check(net, tag, run(manifest.models[f"mtcnn-{net}-{tag}"], batch), {k: parity[f"{net}_{k}"] for k in kinds})
