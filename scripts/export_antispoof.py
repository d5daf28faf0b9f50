"""Export the MiniFASNet passive-liveness (anti-spoofing) models to TFLite (float32 and int8), verify, record fixtures.

Run from the repository root with the export venv (requirements-export.txt: TensorFlow, keras 3, onnx,
onnxruntime):

    /root/venvs/export/bin/python scripts/export_antispoof.py [--source-dir ../shared/models/antispoof]

Sources (Apache-2.0, not on PyPI, never copied into the repository): the upstream PyTorch state dicts
``minivision/*.pth`` (read without PyTorch, scripts/antispoof_source.py) and an independent ONNX export of
the same weights ``yakhyo-onnx/*.onnx``, both sha256-checked, from ``--source-dir`` / ``$EDGE_SHARED_MODELS``
/ ``../shared/models/antispoof``.

Steps per model (MiniFASNetV2, crop scale 2.7; MiniFASNetV1SE, crop scale 4.0):
- rebuild the network in Keras 3 from the state dict: BatchNorm folded into every conv and the linear
  layer, the first conv's kernel transposed from (O, I, kh, kw) to (kh, kw, I, O) so the model takes
  NHWC BGR raw 0..255 input (the original takes CHW), PyTorch's symmetric padding of the stride-2 convs
  as an explicit ZeroPadding2D (TensorFlow's "same" pads stride-2 convs asymmetrically), softmax at the end;
- check it against the ONNX export run in onnxruntime on face crops of the 5-celebrity photos;
- convert to float32, and to full-integer int8 (per-channel weights, float32 input/output) calibrated on
  crops of the 5-celebrity train photos; in the int8 graph PReLU is relu(z) - alpha * relu(-z) with twin
  convs (XNNPACK delegates no int8 PRELU), and the classifier and softmax stay float32 after a DEQUANTIZE;
- verify each file with LiteRT against onnxruntime, one XNNPACK partition;
- write models/antispoof_<model>_{fp32,int8}.tflite, their manifest entries, and
  tests/fixtures/antispoof_parity.npz (face boxes on the 5-celebrity val photos and onnxruntime outputs).

The evaluation-set parity (1,043 images, the original pipeline's p(live)) is scripts/evaluate_antispoof_parity.py.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import antispoof_source as source  # noqa: E402  (numpy only)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-dir", help="folder with minivision/ and yakhyo-onnx/ "
                                             "(default $EDGE_SHARED_MODELS or ../shared/models/antispoof)")
    return parser.parse_args(argv)


if __name__ == "__main__":  # name missing source files in one line, before TensorFlow starts and logs
    source.verified_sources(source.source_dir(parse_args().source_dir))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime  # noqa: E402
import tensorflow as tf  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402
from keras import layers, ops  # noqa: E402

from manifest_tool import MODELS_DIR, update_models  # noqa: E402
from edge.vision.detector import DetectorSettings, MTCNNDetector  # noqa: E402
from edge.runtime.sample_data import celebrity_dataset  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from parity_inputs import antispoof_crop, read_bgr  # noqa: E402
from tflite_convert import int8_but_tail  # noqa: E402
from tflite_graph import xnnpack_partitions  # noqa: E402

FIXTURE = REPO / "tests" / "fixtures" / "antispoof_parity.npz"
SIZE = 80
THREADS = 2
MIN_FACE = 40  # smallest detected face side (px) on the 5-celebrity photos
TAIL_SCOPE = "float_tail"  # the classifier and softmax, kept float32 in the int8 graph
KERAS_LOGIT_TOLERANCE = 1e-3  # rebuilt Keras vs onnxruntime, logits (|logits| up to ~20)
FP32_PROB_TOLERANCE = 1e-4  # float32 TFLite vs onnxruntime, probabilities
WEIGHTS_LICENCE = "Apache-2.0 (minivision-ai/Silent-Face-Anti-Spoofing, LICENSE)"
TRAINING_DATA = "not stated in the source files or in ../shared/models/README.md"

tf.config.threading.set_intra_op_parallelism_threads(THREADS)
tf.config.threading.set_inter_op_parallelism_threads(1)


# ---------------------------------------------------------------- Keras rebuild


class NegativeSlope(layers.Layer):
    """Twin-conv int8 PReLU: relu(z) - alpha * relu(-z), from two convs (weights w and -w, fused RELU)."""

    def build(self, input_shape) -> None:
        channels = input_shape[0][-1]
        self.alpha = self.add_weight(shape=(1, 1, channels), initializer="zeros", trainable=False, name="alpha")

    def call(self, inputs):
        positive, negative = inputs
        return positive - self.alpha * negative


PRELU_MODES = ("native", "twin")  # float32 graph: PRELU, which XNNPACK runs; int8 graph: twin convs


def torch_to_keras_kernel(conv: source.ConvSpec) -> np.ndarray:
    """(O, I, kh, kw) -> (kh, kw, I, O) for a conv; (C, 1, kh, kw) -> (kh, kw, C, 1) for a depthwise conv."""
    return conv.kernel.transpose(2, 3, 0, 1) if conv.depthwise else conv.kernel.transpose(2, 3, 1, 0)


def conv(x, spec: source.ConvSpec, prelu: str):
    """One conv of the spec (+ folded BN), explicit symmetric padding for stride 2, PReLU unless linear."""
    kernel, bias = torch_to_keras_kernel(spec), spec.bias
    size = kernel.shape[0]
    if spec.padding and spec.stride > 1:
        x = layers.ZeroPadding2D(spec.padding, name=f"{spec.name}.pad")(x)
        padding = "valid"
    else:
        padding = "same" if spec.padding else "valid"
        if spec.padding not in (0, (size - 1) // 2):
            raise SystemExit(f"{spec.name}: padding {spec.padding} for a {size}x{size} kernel")

    def make(name: str, activation: str | None, sign: float):
        if spec.depthwise:
            layer = layers.DepthwiseConv2D(size, spec.stride, padding, activation=activation, name=name)
        else:
            layer = layers.Conv2D(kernel.shape[3], size, spec.stride, padding, activation=activation, name=name)
        layer.build(x.shape)
        layer.set_weights([sign * kernel, sign * bias])
        return layer(x)

    if spec.alpha is None:
        return make(spec.name, None, 1.0)
    if prelu == "native":
        z = make(spec.name, None, 1.0)
        layer = layers.PReLU(shared_axes=[1, 2], name=f"{spec.name}.prelu")
        layer.build(z.shape)
        layer.set_weights([spec.alpha.reshape(1, 1, -1)])
        return layer(z)
    if prelu == "twin":  # the int8 form
        positive = make(spec.name, "relu", 1.0)
        negative = make(f"{spec.name}.neg", "relu", -1.0)
        slope = NegativeSlope(name=f"{spec.name}.prelu")
        slope.build([positive.shape, negative.shape])
        slope.set_weights([spec.alpha.reshape(1, 1, -1)])
        return slope([positive, negative])
    raise ValueError(f"unknown PReLU form {prelu!r}")


def squeeze_excitation(x, name: str, se):
    """x * sigmoid(fc2(relu(fc1(mean(x))))) with 1x1 convs (BN folded), as the upstream SE module."""
    (k1, b1), (k2, b2) = se
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}.se.pool")(x)
    for index, (kernel, bias, activation) in enumerate(((k1, b1, "relu"), (k2, b2, "sigmoid")), start=1):
        layer = layers.Conv2D(kernel.shape[0], 1, activation=activation, name=f"{name}.se.fc{index}")
        layer.build(s.shape)
        layer.set_weights([kernel.transpose(2, 3, 1, 0), bias])
        s = layer(s)
    return layers.Multiply(name=f"{name}.se.scale")([x, s])


def block(x, spec: source.BlockSpec, prelu: str):
    """expand 1x1 + PReLU, depthwise 3x3 + PReLU, project 1x1 (linear), [SE], [+ shortcut]."""
    y = conv(x, spec.expand, prelu)
    y = conv(y, spec.depthwise, prelu)
    y = conv(y, spec.project, prelu)
    if spec.se is not None:
        y = squeeze_excitation(y, spec.name, spec.se)
    return layers.Add(name=f"{spec.name}.add")([x, y]) if spec.residual else y


def build_network(spec: source.NetworkSpec, name: str, prelu: str) -> keras.Model:
    """[N,80,80,3] BGR raw -> {"probs": [N,3]} softmax; ``prelu`` one of PRELU_MODES (int8: not native)."""
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = conv(inputs, spec.stem, prelu)
    x = conv(x, spec.stem_dw, prelu)
    for transition, blocks in spec.stages:
        x = block(x, transition, prelu)
        for residual in blocks:
            x = block(x, residual, prelu)
    x = conv(x, spec.head_expand, prelu)
    x = conv(x, spec.head_dw, prelu)
    if tuple(x.shape[1:3]) != (1, 1):
        raise SystemExit(f"{name}: head map is {x.shape[1:3]}, expected 1x1 for 80x80 input")
    x = ops.reshape(x, (-1, x.shape[-1]))  # constant-shape flatten (keras Flatten emits SHAPE/PACK)
    linear = layers.Dense(spec.linear[0].shape[0], name="linear_bn")
    linear.build(x.shape)
    linear.set_weights([spec.linear[0].T, spec.linear[1]])
    x = linear(x)
    classifier = layers.Dense(spec.classifier.shape[0], use_bias=False, name=f"{TAIL_SCOPE}_classifier")
    classifier.build(x.shape)
    classifier.set_weights([spec.classifier.T])
    probs = layers.Softmax(name=f"{TAIL_SCOPE}_softmax")(classifier(x))
    return keras.Model(inputs, {"probs": probs}, name=name)


def logits_model(model: keras.Model) -> keras.Model:
    """The same graph ending at the classifier's logits (for the Keras-vs-ONNX check)."""
    return keras.Model(model.input, model.get_layer(f"{TAIL_SCOPE}_classifier").output)


# ---------------------------------------------------------------- references and data


class OnnxReference:
    """The ONNX export of the same weights in onnxruntime: NHWC BGR raw batch -> logits."""

    def __init__(self, path: Path) -> None:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = THREADS
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        chw = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
        return np.concatenate([self.session.run(None, {"input": sample[None]})[0] for sample in chw])


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, returned as float32."""
    z = logits.astype(np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return (z / z.sum(axis=-1, keepdims=True)).astype(np.float32)


def face_boxes(paths: list[Path]) -> list[tuple[Path, tuple[int, int, int, int]]]:
    """(photo, integer [x, y, w, h]) of the most confident face of each photo (the project's float32 MTCNN)."""
    detector = MTCNNDetector(DetectorSettings(quantization="float32", num_threads=THREADS))
    found = []
    for path in paths:
        image = read_bgr(path)
        faces = [f for f in detector.detect(image) if min(f.width, f.height) >= MIN_FACE]
        if not faces:
            continue
        face = max(faces, key=lambda f: f.score)
        x1, y1, x2, y2 = face.box
        found.append((path, (round(x1), round(y1), round(x2 - x1), round(y2 - y1))))
    return found


def crops(items: list[tuple[Path, tuple[int, int, int, int]]], scale: float, mirror: bool = False) -> np.ndarray:
    """[N,80,80,3] float32 BGR raw crops of ``items`` at ``scale`` (each also mirrored if ``mirror``)."""
    out = []
    for path, box in items:
        crop = antispoof_crop(read_bgr(path), box, scale)
        out += [crop, crop[:, ::-1]] if mirror else [crop]
    return np.ascontiguousarray(np.stack(out))


# ---------------------------------------------------------------- conversion and checks


def saved_model(model: keras.Model, folder: str) -> None:
    """Export ``model``'s inference endpoint [None,80,80,3] -> {"probs"}."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", lambda image: model(image, training=False),
                         input_signature=[tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32, name="image")])
    archive.write_out(folder, verbose=False)


def convert(model: keras.Model, calibration: np.ndarray | None) -> bytes:
    """float32 flatbuffer, or int8 (per-channel weights, float32 input/output) when ``calibration`` is given.

    The int8 body is full-integer; the classifier (128 -> 3) and the softmax stay float32 after a
    DEQUANTIZE (XNNPACK delegates no int8 SOFTMAX, and the float classifier keeps the logits free of an
    int8 output step). The graph runs as one XNNPACK partition."""
    with tempfile.TemporaryDirectory() as folder:
        saved_model(model, folder)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder, signature_keys=["serve"])
        return converter.convert() if calibration is None else int8_but_tail(converter, calibration, TAIL_SCOPE)

class Lite:
    """A LiteRT interpreter on one file, run one crop at a time (batch 1, as the daemon will)."""

    def __init__(self, path: Path, threads: int = THREADS) -> None:
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        results = []
        for sample in batch:
            self.interpreter.set_tensor(self.input, np.ascontiguousarray(sample[None], dtype=np.float32))
            self.interpreter.invoke()
            results.append(self.interpreter.get_tensor(self.output)[0].copy())
        return np.stack(results)

    def partitions(self) -> tuple[int, list[str]]:
        """Number of delegated partitions and the names of the ops left outside them."""
        return xnnpack_partitions(self.interpreter)

    def op_names(self) -> list[str]:
        """The original ops of the graph (DELEGATE nodes left out)."""
        return sorted({n["op_name"] for n in self.interpreter._get_ops_details() if n["op_name"] != "DELEGATE"})


def manifest_entry(model: source.AntispoofModel, quantization: str, notes: str) -> dict:
    """Manifest description of one exported file."""
    tag = "fp32" if quantization == "float32" else "int8"
    return {
        "file": f"antispoof_{model.name}_{tag}.tflite",
        "kind": "antispoof",
        "family": "minifasnet",
        "quantization": quantization,
        "input_size": [SIZE, SIZE],
        "input_color": "BGR",
        "normalization": "raw",
        "batch": None,
        "crop_scale": model.crop_scale,
        "live_class": source.LIVE_CLASS,
        "outputs": "probs: softmax over 3 classes (1 = live, 0 and 2 = spoof kinds)",
        "source": source.source_record(model),
        "weights_licence": WEIGHTS_LICENCE,
        "training_data": TRAINING_DATA,
        "notes": notes,
    }


def describe(diff: np.ndarray) -> str:
    """'max 1.2e-06 mean 3.4e-07' of absolute differences."""
    return f"max {float(diff.max()):.1e} mean {float(diff.mean()):.1e}"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    folder = source.source_dir(args.source_dir)
    source.verified_sources(folder)
    keras.utils.set_random_seed(0)

    root = celebrity_dataset()
    train = face_boxes(sorted((root / "train").glob("*/*.jpg")))
    val = face_boxes(sorted((root / "val").glob("*/*.jpg")))
    print(f"faces: {len(train)} train photos (calibration, each crop also mirrored), {len(val)} val photos (checks)")

    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    fixture: dict[str, np.ndarray] = {
        "photos": np.array([p.relative_to(root).as_posix() for p, _ in val]),
        "boxes_xywh": np.array([b for _, b in val], dtype=np.int32),
    }
    entries, rows = {}, []
    for model in source.MODELS.values():
        state = source.read_state_dict(folder / model.pth)
        spec = source.network_spec(state)
        reference = OnnxReference(folder / model.onnx)
        check = crops(val, model.crop_scale)
        calibration = crops(train, model.crop_scale, mirror=True)
        want_logits = reference(check)
        want = softmax(want_logits)
        fixture[f"{model.name}__crop_scale"] = np.array(model.crop_scale, dtype=np.float64)  # as the manifest: a float32 2.7 moves crop corners
        fixture[f"{model.name}__logits"] = want_logits.astype(np.float32)
        fixture[f"{model.name}__probs"] = want
        print(f"{model.title}: {source.parameter_count(state):,} parameters, {len(calibration)} calibration crops")
        for quantization in ("float32", "int8"):
            tag = "fp32" if quantization == "float32" else "int8"
            keras_model = build_network(spec, model.name, "twin" if quantization == "int8" else "native")
            keras_logits = np.asarray(logits_model(keras_model)(check, training=False))
            keras_diff = np.abs(keras_logits - want_logits)
            if keras_diff.max() > KERAS_LOGIT_TOLERANCE:
                raise SystemExit(f"{model.title} Keras ({tag} graph) differs from onnxruntime: logits {describe(keras_diff)}")
            path = MODELS_DIR / f"antispoof_{model.name}_{tag}.tflite"
            path.write_bytes(convert(keras_model, calibration if quantization == "int8" else None))
            lite = Lite(path)
            got = lite(check)
            diff = np.abs(got - want)
            live_diff = diff[:, source.LIVE_CLASS]
            partitions, others = lite.partitions()
            if partitions != 1 or others:
                raise SystemExit(f"{path}: {partitions} XNNPACK partitions, ops not delegated: {others}")
            if quantization == "float32" and diff.max() > FP32_PROB_TOLERANCE:
                raise SystemExit(f"{path}: probabilities differ from onnxruntime ({describe(diff)})")
            rows.append((path.name, describe(keras_diff), describe(live_diff), partitions, ",".join(lite.op_names())))
            notes = (f"{model.title} (Silent-Face-Anti-Spoofing) rebuilt in Keras 3 from the upstream state dict: "
                     "BatchNorm folded into the convs and the linear layer, the first conv's kernel transposed to "
                     "take NHWC BGR raw 0..255 input (the original takes CHW), stride-2 convs padded symmetrically "
                     "as PyTorch does (explicit PAD), softmax added at the end. Input: the face box's w x h times "
                     f"crop_scale ({model.crop_scale}) about its centre, capped to fit and shifted back inside the "
                     "image, bilinear-resized to 80x80 (edge.vision.liveness.crop). Output: softmax over "
                     "3 classes, class 1 = live; the original fuses MiniFASNetV2 and V1SE by averaging p(live). "
                     f"Max abs diff of p(live) vs onnxruntime on {len(check)} 5-celebrity val crops: "
                     f"{float(live_diff.max()):.1e}.")
            if quantization == "int8":
                notes += (" Full-integer int8 body (per-channel weights, float32 input/output), calibrated on "
                          f"{len(calibration)} face crops of the 5-celebrity train photos and their mirrors; PReLU "
                          "as relu(z) - alpha * relu(-z) with twin convs (weights w and -w) because XNNPACK "
                          "delegates no int8 PRELU; the 128->3 classifier and the softmax run in float32 after a "
                          "DEQUANTIZE. One XNNPACK partition.")
            entries[f"antispoof-{model.name}-{tag}"] = manifest_entry(model, quantization, notes)

    update_models(entries)
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(FIXTURE, **fixture)
    print(f"fixture {FIXTURE.relative_to(REPO)}: {FIXTURE.stat().st_size / 1024:.0f} KB, {len(val)} faces x 2 models")
    print(f"\n{'file':<38}{'keras logits vs onnx':<28}{'tflite p(live) vs onnx':<28}{'parts':>6}{'bytes':>9}  ops")
    for name, keras_text, lite_text, partitions, op_names in rows:
        print(f"{name:<38}{keras_text:<28}{lite_text:<28}{partitions:>6}{(MODELS_DIR / name).stat().st_size:>9}  "
              f"{op_names}")


if __name__ == "__main__":
    main()
