"""The MiniFASNet anti-spoofing source weights (development tooling; numpy only, no TensorFlow).

The weights are not on PyPI: they are read from ``../shared/models/antispoof`` beside the repository
(``--source-dir`` or ``$EDGE_SHARED_MODELS``, which names the ``models`` folder or the ``antispoof``
folder itself), checked against the sha256 values of that folder's README, and never copied into the
repository. The ``.pth`` files are legacy (non-zip) PyTorch pickles of a ``state_dict``; they are
read here without PyTorch.
"""
from __future__ import annotations

import collections
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from artifacts import sha256_of

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE_DIR = REPO.parent / "shared" / "models" / "antispoof"
UPSTREAM = "minivision-ai/Silent-Face-Anti-Spoofing"
UPSTREAM_COMMIT = "b6d5f04ad78778917853b25c778acef6d5626d15"
ONNX_UPSTREAM = "yakhyo/face-anti-spoofing"
ONNX_UPSTREAM_COMMIT = "c175efef505bc275f7835cc9aa2aecab305ac184"
BN_EPS = 1e-5  # torch.nn.BatchNorm2d / BatchNorm1d default, as in the ONNX export's BatchNormalization
LIVE_CLASS = 1


@dataclass(frozen=True)
class AntispoofModel:
    """One MiniFASNet: its weights, an independent ONNX export of them, and its crop scale."""

    name: str  # short name in file and manifest names
    title: str
    pth: str  # relative to the source folder
    pth_sha256: str
    onnx: str
    onnx_sha256: str
    crop_scale: float
    squeeze_excitation: bool


MODELS = {
    m.name: m
    for m in (
        AntispoofModel("minifasnetv2", "MiniFASNetV2", "minivision/2.7_80x80_MiniFASNetV2.pth",
                       "a5eb02e1843f19b5386b953cc4c9f011c3f985d0ee2bb9819eea9a142099bec0",
                       "yakhyo-onnx/MiniFASNetV2.onnx",
                       "4eed38f0bde33c9b805942a5f25e42ce1161e2bda545254be622be957727794e", 2.7, False),
        AntispoofModel("minifasnetv1se", "MiniFASNetV1SE", "minivision/4_0_0_80x80_MiniFASNetV1SE.pth",
                       "84ee1d37d96894d5e82de5a57df044ef80a58be2b218b5ed7cdfd875ec2f5990",
                       "yakhyo-onnx/MiniFASNetV1SE.onnx",
                       "d819a69bac6b9ade2a0f4d9b60b618e1260f7bf3ba1fddff6c5d82131cb1083f", 4.0, True),
    )
}


def source_dir(option: str | None = None) -> Path:
    """The antispoof source folder: ``option``, else ``$EDGE_SHARED_MODELS``, else ``../shared/models/antispoof``."""
    chosen = option or os.environ.get("EDGE_SHARED_MODELS")
    if not chosen:
        return DEFAULT_SOURCE_DIR
    path = Path(chosen)
    return path / "antispoof" if (path / "antispoof").is_dir() else path


def verified_sources(folder: Path, with_onnx: bool = True) -> None:
    """Exit with one line naming what is missing or altered, unless every source file is present and intact."""
    wanted = [(m.pth, m.pth_sha256) for m in MODELS.values()]
    if with_onnx:
        wanted += [(m.onnx, m.onnx_sha256) for m in MODELS.values()]
    missing = [name for name, _ in wanted if not (folder / name).is_file()]
    if missing:
        raise SystemExit(f"MiniFASNet source weights missing in {folder}: {', '.join(missing)} "
                         "(they are not on PyPI: pass --source-dir or set EDGE_SHARED_MODELS to the folder "
                         "holding minivision/ and yakhyo-onnx/)")
    altered = [name for name, digest in wanted if sha256_of(folder / name) != digest]
    if altered:
        raise SystemExit(f"MiniFASNet source weights in {folder} do not match their recorded sha256: "
                         f"{', '.join(altered)}")


def source_record(model: AntispoofModel) -> dict[str, str]:
    """The manifest's description of where a model's weights came from (a GitHub repository, not PyPI)."""
    return {
        "repository": UPSTREAM,
        "commit": UPSTREAM_COMMIT,
        "path": f"resources/anti_spoof_models/{Path(model.pth).name}",
        "sha256": model.pth_sha256,
        "licence": "Apache-2.0",
        "checked_against": f"{ONNX_UPSTREAM}@{ONNX_UPSTREAM_COMMIT} weights/{Path(model.onnx).name} "
                           f"(sha256 {model.onnx_sha256}), run in onnxruntime",
    }


# ---------------------------------------------------------------- legacy PyTorch pickle

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
                   "LongStorage": np.int64, "IntStorage": np.int32}


@dataclass(frozen=True)
class _Storage:
    dtype: type


@dataclass(frozen=True)
class _TensorRef:
    key: str
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, offset, size, stride, *_):
    return _TensorRef(storage, int(offset), tuple(size), tuple(stride))


class _Unpickler(pickle.Unpickler):
    """Resolves only what a plain state_dict needs; anything else is refused (no arbitrary code runs)."""

    def __init__(self, file) -> None:
        super().__init__(file)
        self.storages: dict[str, tuple[type, int]] = {}

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _Storage(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"unexpected global {module}.{name} in a state_dict")

    def persistent_load(self, pid):
        kind, storage, key, _location, numel = pid[:5]
        if kind != "storage" or not isinstance(storage, _Storage):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        self.storages[key] = (storage.dtype, int(numel))
        return key


def read_state_dict(path: Path) -> dict[str, np.ndarray]:
    """{name without 'module.': array} from a legacy (non-zip) torch.save file of a state_dict."""
    with open(path, "rb") as file:
        if pickle.load(file) != _LEGACY_MAGIC or pickle.load(file) != _LEGACY_PROTOCOL:
            raise SystemExit(f"{path}: not a legacy PyTorch file (magic number / protocol)")
        info = pickle.load(file)
        if not info.get("little_endian", False):
            raise SystemExit(f"{path}: big-endian PyTorch file")
        unpickler = _Unpickler(file)
        state = unpickler.load()
        keys = pickle.load(file)
        raw = {}
        for key in keys:
            (count,) = struct.unpack("<q", file.read(8))
            dtype, numel = unpickler.storages[key]
            if count != numel:
                raise SystemExit(f"{path}: storage {key} holds {count} elements, {numel} expected")
            raw[key] = np.frombuffer(file.read(count * np.dtype(dtype).itemsize), dtype=dtype)
        if file.read(1):
            raise SystemExit(f"{path}: trailing bytes after the last storage")
    arrays = {}
    for name, ref in state.items():
        item = np.dtype(raw[ref.key].dtype).itemsize
        array = np.lib.stride_tricks.as_strided(raw[ref.key][ref.offset:], ref.size,
                                                tuple(s * item for s in ref.stride))
        arrays[name.removeprefix("module.")] = np.array(array)  # own, contiguous copy
    return arrays


# ---------------------------------------------------------------- the network, as the weights describe it


def fold_batch_norm(state: dict[str, np.ndarray], weight: str, bn: str) -> tuple[np.ndarray, np.ndarray]:
    """(kernel, bias) of a bias-free conv or linear ``weight`` followed by inference-mode BatchNorm ``bn``.

    The kernel keeps the PyTorch layout (out channels first)."""
    kernel = state[f"{weight}.weight"].astype(np.float64)
    scale = state[f"{bn}.weight"].astype(np.float64) / np.sqrt(state[f"{bn}.running_var"].astype(np.float64) + BN_EPS)
    bias = state[f"{bn}.bias"].astype(np.float64) - state[f"{bn}.running_mean"].astype(np.float64) * scale
    kernel = kernel * scale.reshape((-1,) + (1,) * (kernel.ndim - 1))
    return kernel.astype(np.float32), bias.astype(np.float32)


@dataclass(frozen=True)
class ConvSpec:
    """One conv (+ folded BN) of the network, PReLU after it or not."""

    name: str  # state_dict prefix of the conv/bn/prelu triple
    kernel: np.ndarray  # torch layout (O, I/groups, kh, kw)
    bias: np.ndarray
    stride: int
    padding: int
    depthwise: bool
    alpha: np.ndarray | None  # PReLU slopes, or None for a linear (project) conv


def conv_spec(state: dict[str, np.ndarray], name: str, stride: int, padding: int, linear: bool = False) -> ConvSpec:
    """The conv ``name`` (keys name.conv.weight, name.bn.*, name.prelu.weight)."""
    kernel, bias = fold_batch_norm(state, f"{name}.conv", f"{name}.bn")
    depthwise = kernel.shape[1] == 1 and kernel.shape[0] > 1 and kernel.shape[2] > 1
    alpha = None if linear else state[f"{name}.prelu.weight"].astype(np.float32)
    return ConvSpec(name, kernel, bias, stride, padding, depthwise, alpha)


@dataclass(frozen=True)
class BlockSpec:
    """Depth-wise block: 1x1 expand + PReLU, 3x3 depthwise + PReLU, 1x1 project; SE and residual optional."""

    name: str
    expand: ConvSpec
    depthwise: ConvSpec
    project: ConvSpec
    residual: bool
    se: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None  # (fc1, fc2) kernel/bias


def block_spec(state: dict[str, np.ndarray], name: str, stride: int, residual: bool) -> BlockSpec:
    """The block ``name`` (conv, conv_dw, project, and se_module when present)."""
    se = None
    if f"{name}.se_module.fc1.weight" in state:
        se = (fold_batch_norm(state, f"{name}.se_module.fc1", f"{name}.se_module.bn1"),
              fold_batch_norm(state, f"{name}.se_module.fc2", f"{name}.se_module.bn2"))
    return BlockSpec(name, conv_spec(state, f"{name}.conv", 1, 0), conv_spec(state, f"{name}.conv_dw", stride, 1),
                     conv_spec(state, f"{name}.project", 1, 0, linear=True), residual, se)


@dataclass(frozen=True)
class NetworkSpec:
    """MiniFASNet for 80x80 input: stem, three stride-2 transitions each followed by residual blocks, head."""

    stem: ConvSpec  # 3x3 stride 2
    stem_dw: ConvSpec  # 3x3 depthwise
    stages: tuple[tuple[BlockSpec, tuple[BlockSpec, ...]], ...]  # (transition, residual blocks)
    head_expand: ConvSpec  # 1x1 to 512 + PReLU
    head_dw: ConvSpec  # 5x5 depthwise, valid, no PReLU: 5x5 -> 1x1
    linear: tuple[np.ndarray, np.ndarray]  # (512 -> 128) with BatchNorm1d folded, torch layout (out, in)
    classifier: np.ndarray  # (3, 128), no bias


# Module names of the upstream MiniFASNet. Strides are not in a state_dict: they are the architecture's (the
# ONNX graph's Conv attributes agree; a wrong one fails the parity check): the stem and each transition halve
# the map, 80 -> 40 -> 20 -> 10 -> 5.
STAGES = (("conv_23", "conv_3"), ("conv_34", "conv_4"), ("conv_45", "conv_5"))


def network_spec(state: dict[str, np.ndarray]) -> NetworkSpec:
    """Read the whole network from a MiniFASNetV2 / V1SE state_dict; checks every key is used."""
    stages = []
    for transition, residual in STAGES:
        count = len({k.split(".")[2] for k in state if k.startswith(f"{residual}.model.")})
        blocks = tuple(block_spec(state, f"{residual}.model.{i}", 1, True) for i in range(count))
        stages.append((block_spec(state, transition, 2, False), blocks))
    linear = fold_batch_norm(state, "linear", "bn")
    if "prob.bias" in state or "linear.bias" in state:
        raise SystemExit("unexpected bias on the linear or classifier layer")
    spec = NetworkSpec(conv_spec(state, "conv1", 2, 1), conv_spec(state, "conv2_dw", 1, 1), tuple(stages),
                       conv_spec(state, "conv_6_sep", 1, 0), conv_spec(state, "conv_6_dw", 1, 0, linear=True),
                       linear, state["prob.weight"].astype(np.float32))
    used = {"linear.weight", "prob.weight"} | {f"bn.{p}" for p in ("weight", "bias", "running_mean", "running_var",
                                                                    "num_batches_tracked")}
    prefixes = ["conv1.", "conv2_dw.", "conv_6_sep.", "conv_6_dw."] + [f"{t}." for t, _ in STAGES]
    prefixes += [f"{r}.model." for _, r in STAGES]
    unused = [k for k in state if k not in used and not k.startswith(tuple(prefixes))]
    if unused:
        raise SystemExit(f"state_dict keys the rebuild does not use: {unused[:5]}")
    return spec


def parameter_count(state: dict[str, np.ndarray]) -> int:
    """Learned parameters (BatchNorm running statistics and counters excluded)."""
    return sum(v.size for k, v in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
