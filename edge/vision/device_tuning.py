"""Let the device decide which model variants and how many interpreter threads it runs.

Whether the int8 models are faster than float32 depends on the CPU and the runtime (on x86 the int8
P-Net is slower; on ARM nobody here has measured it), and so does the best thread count. On first start
(or ``edge-facerec --tune``) :func:`measure` times, on a synthetic frame of the configured camera size,

- the detector: float32 and int8 MTCNN with 1..N threads, a full pass and a tracking pass, combined
  as the daemon runs them (one full pass in ``detector.full_every`` frames when tracking);
- the embedder: the configured one with 1..N threads (one face; its variant is fixed by the gallery,
  whose embeddings only that model's match);
- liveness (when enabled): float32 and int8 MiniFASNet with 1..N threads (one face);

within ``tuning.budget_s`` of timed runs (each candidate gets its share, at least 3 runs, after one
warm-up run). :func:`decide` picks for each model the fewest threads within 10% of the fastest, and int8
only when it is at least ``INT8_MIN_SPEEDUP`` times as fast as float32 (int8 costs accuracy: the cascade's
tracking recall is 95.8 against 98.4% on the stage clip, docs/detector.md). The result is stored in
``tuning.file`` (atomically) with what it was measured on (CPU model, cores, runtime and its version,
the models' sha256, the frame size) and reused while that stays the same. The configuration's explicit
settings win over it (:func:`chosen`).
"""
from __future__ import annotations

import json
import logging
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..config import Config
from ..errors import EdgeError
from ..runtime.interpreter import make_interpreter, runtime_name
from ..runtime.model_files import Manifest, ModelSpec, load_manifest, read_verified
from ..runtime.native_logs import first_allocation_to_log
from .detector import DetectorSettings, MTCNNDetector, resolve_quantization
from .liveness import liveness_specs

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
INT8_MIN_SPEEDUP = 1.25  # int8 is chosen only when it runs at least this many times as fast as float32
THREADS_WITHIN = 1.10  # the fewest threads whose time is within 10% of the fastest
UNTUNED_THREADS = 2  # threads left to the tuning when there is none (the figures in docs/ were taken with 2)
THREAD_STEPS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)  # thread counts tried, up to the CPUs available
MIN_RUNS = 3
DEFAULT_FRAME = (640, 480)  # width, height timed when the camera keeps its own size
BUDGET_SHARES = {"detector": 0.6, "embedder": 0.25, "liveness": 0.15}
VARIANTS = ("float32", "int8")


class TuningError(EdgeError):
    """The tuning could not be measured or stored."""


@dataclass(frozen=True)
class ModelChoice:
    """What the daemon runs: each model's variant and threads."""

    detector_quantization: str
    detector_threads: int
    embedder_threads: int
    liveness_quantization: str
    liveness_threads: int

    def describe(self) -> str:
        """One line for the log."""
        return (f"detector {self.detector_quantization} {_threads(self.detector_threads)}, embedder "
                f"{_threads(self.embedder_threads)}, liveness {self.liveness_quantization} "
                f"{_threads(self.liveness_threads)}")


def _threads(count: int) -> str:
    return f"{count} thread{'s' if count != 1 else ''}"


@dataclass(frozen=True)
class Timing:
    """One candidate's median milliseconds: per frame for the detector, per face for the others."""

    model: str  # detector, embedder or liveness
    variant: str  # float32 or int8
    threads: int
    ms: float
    runs: int
    full_ms: float | None = None  # detector: a full pass
    tracking_ms: float | None = None  # detector: a tracking pass (O-Net on one box around each of two faces)


@dataclass(frozen=True)
class Tuning:
    """A measured choice and what it was measured on."""

    device: dict[str, Any]
    timings: tuple[Timing, ...]
    choice: ModelChoice
    measured_at: str
    seconds: float  # how long measuring took, loading included
    load: float  # the 1-minute load average before measuring (a busy device measures slower, and threads help less)

    def to_json(self) -> str:
        """The stored form."""
        return json.dumps({"version": FORMAT_VERSION, "device": self.device, "measured_at": self.measured_at,
                           "seconds": self.seconds, "load": self.load, "choice": asdict(self.choice),
                           "timings": [asdict(t) for t in self.timings]}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Tuning:
        """The stored form read back; ValueError (or KeyError, TypeError) when it is not one."""
        raw = json.loads(text)
        if raw.get("version") != FORMAT_VERSION:
            raise ValueError(f"format version {raw.get('version')!r}, expected {FORMAT_VERSION}")
        return cls(device=raw["device"], timings=tuple(Timing(**t) for t in raw["timings"]),
                   choice=ModelChoice(**raw["choice"]), measured_at=raw["measured_at"], seconds=raw["seconds"],
                   load=raw["load"])

    def table(self) -> str:
        """The device, every timing and the choice, as Markdown (what to send back when reporting speed)."""
        d = self.device
        lines = [f"device: {d['cpu']} ({d['machine']}, {d['cores']} CPUs), {d['runtime']}; frame "
                 f"{d['frame'][0]}x{d['frame'][1]}, minimum face {d['min_face']} px, full pass every "
                 f"{d['full_every']} frames; measured {self.measured_at} in {self.seconds:.1f} s, load average "
                 f"{self.load:.2f} before",
                 "",
                 "| model | variant | threads | ms | full pass ms | tracking pass ms | runs |",
                 "|---|---|---|---|---|---|---|"]
        for t in self.timings:
            name = d["embedder"] if t.model == "embedder" else t.model
            full = f"{t.full_ms:.2f}" if t.full_ms is not None else ""
            tracking = f"{t.tracking_ms:.2f}" if t.tracking_ms is not None else ""
            lines.append(f"| {name} | {t.variant} | {t.threads} | {t.ms:.2f} | {full} | {tracking} | {t.runs} |")
        lines += ["", "ms: detector per frame (one full pass in every full_every frames, tracking passes between), "
                  "embedder and liveness per face", f"chosen: {self.choice.describe()}"]
        return "\n".join(lines)


def cpu_model() -> str:
    """The CPU's (or board's) name: /proc/cpuinfo's model name, Model or Hardware, else the platform's."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    for key in ("model name", "Model", "Hardware", "CPU part"):
        if fields.get(key):
            return fields[key]
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux, or the call filtered out
        return os.cpu_count() or 1


def thread_counts(max_threads: int | None) -> list[int]:
    """The thread counts tried: 1, 2, 3, 4, 6, 8 ... up to the usable CPUs (or ``max_threads``), and that number."""
    top = min(usable_cores(), max_threads) if max_threads else usable_cores()
    return sorted({n for n in THREAD_STEPS if n <= top} | {top})


def frame_size(config: Config) -> tuple[int, int]:
    """The camera size the detector is timed at (width, height)."""
    camera = config.camera
    return (camera.width, camera.height) if camera.width and camera.height else DEFAULT_FRAME


def _timed_specs(config: Config, manifest: Manifest) -> dict[str, list[ModelSpec]]:
    specs = {"detector": [manifest.models[f"mtcnn-{stage}-{tag}"] for tag in ("fp32", "int8")
                          for stage in ("pnet", "rnet", "onet")],
             "embedder": [manifest.embedder(config.recognition.embedder)]}
    if config.liveness.enabled:
        specs["liveness"] = [spec for variant in VARIANTS
                             for spec in liveness_specs(manifest, config.liveness.models, variant)]
    return specs


def device_key(config: Config, manifest: Manifest | None = None) -> dict[str, Any]:
    """What a tuning is valid for: the CPU, the runtime, the models and what was timed."""
    manifest = manifest or load_manifest()
    runtime = runtime_name()
    try:
        runtime = f"{runtime} {metadata.version(runtime)}"
    except metadata.PackageNotFoundError:
        pass
    specs = _timed_specs(config, manifest)
    return {"cpu": cpu_model(), "machine": platform.machine(), "cores": usable_cores(), "runtime": runtime,
            "models": {spec.name: spec.sha256 for group in specs.values() for spec in group},
            "embedder": specs["embedder"][0].name, "frame": list(frame_size(config)),
            "min_face": config.detector.min_face, "full_every": config.detector.full_every if config.detector.tracking
            else 1, "max_threads": config.tuning.max_threads}


def synthetic_frame(width: int, height: int) -> np.ndarray:
    """A fixed BGR frame with the texture of a real scene (blurred noise at two scales): what the pyramid
    and the stages see is as busy as a camera's view, the same on every device."""
    rng = np.random.default_rng(16)
    coarse = cv2.resize(rng.uniform(0, 255, (height // 16 + 1, width // 16 + 1, 3)).astype(np.float32), (width, height))
    fine = cv2.GaussianBlur(rng.normal(0, 40, (height, width, 3)).astype(np.float32), (0, 0), 1.5)
    return np.clip(coarse + fine, 0, 255).astype(np.uint8)


def _median_ms(run: Any, seconds: float) -> tuple[float, int]:
    """Median milliseconds of ``run()`` over at least MIN_RUNS runs and about ``seconds``, after a warm-up."""
    run()
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < MIN_RUNS or time.perf_counter() < deadline:
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times)), len(times)


def _time_detector(config: Config, threads: list[int], share: float) -> list[Timing]:
    width, height = frame_size(config)
    rgb = cv2.cvtColor(synthetic_frame(width, height), cv2.COLOR_BGR2RGB)
    side = 2.0 * config.detector.min_face
    boxes = [(width * 0.3, height * 0.3, width * 0.3 + side, height * 0.3 + side),
             (width * 0.6, height * 0.4, width * 0.6 + side, height * 0.4 + side)]
    every = config.detector.full_every if config.detector.tracking else 1
    timings = []
    for variant in VARIANTS:
        for count in threads:
            detector = MTCNNDetector(DetectorSettings(min_face_size=config.detector.min_face, quantization=variant,
                                                      num_threads=count))
            full, full_runs = _median_ms(lambda: detector.detect_rgb(rgb), share / 2)
            near, near_runs = _median_ms(lambda: detector.detect_near(rgb, boxes, (0.9,), 0.3), share / 2)
            per_frame = (full + (every - 1) * near) / every
            timings.append(Timing("detector", variant, count, round(per_frame, 3), full_runs + near_runs,
                                  round(full, 3), round(near, 3)))
    return timings


def _time_interpreters(model: str, groups: dict[str, list[ModelSpec]], threads: list[int],
                       share: float) -> list[Timing]:
    """Each group of models (a variant) run once each on a random input, per thread count."""
    rng = np.random.default_rng(0)
    contents = {spec.name: read_verified(spec) for specs in groups.values() for spec in specs}
    timings = []
    for variant, specs in groups.items():
        for count in threads:
            interpreters = []
            for spec in specs:
                interpreter = make_interpreter(contents[spec.name], count)
                index = interpreter.get_input_details()[0]["index"]
                shape = [1, *spec.input_size, 3]  # one face, as the daemon runs them
                interpreter.resize_tensor_input(index, shape, strict=False)
                with first_allocation_to_log(log):  # TFLite's delegate line goes to the log, not the terminal
                    interpreter.allocate_tensors()
                interpreter.set_tensor(index, rng.uniform(-1, 1, shape).astype(np.float32))
                interpreters.append(interpreter)
            ms, runs = _median_ms(lambda: [interpreter.invoke() for interpreter in interpreters], share)
            timings.append(Timing(model, variant, count, round(ms, 3), runs))
    return timings


def measure(config: Config, manifest: Manifest | None = None) -> Tuning:
    """Time every candidate on this device (see the module's docstring) and decide."""
    manifest = manifest or load_manifest()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    started = time.perf_counter()
    threads = thread_counts(config.tuning.max_threads)
    budget = config.tuning.budget_s
    specs = _timed_specs(config, manifest)
    per_candidate = {model: budget * BUDGET_SHARES[model] / (len(threads) * (1 if model == "embedder" else 2))
                     for model in specs}
    timings = _time_detector(config, threads, per_candidate["detector"])
    timings += _time_interpreters("embedder", {specs["embedder"][0].quantization: specs["embedder"]}, threads,
                                  per_candidate["embedder"])
    if "liveness" in specs:
        groups = {variant: liveness_specs(manifest, config.liveness.models, variant) for variant in VARIANTS}
        timings += _time_interpreters("liveness", groups, threads, per_candidate["liveness"])
    return Tuning(device=device_key(config, manifest), timings=tuple(timings), choice=decide(timings),
                  measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  seconds=round(time.perf_counter() - started, 2), load=round(load, 2))


def decide(timings: list[Timing] | tuple[Timing, ...]) -> ModelChoice:
    """For each model, the fewest threads within THREADS_WITHIN of its fastest, and int8 only when its best
    is INT8_MIN_SPEEDUP times as fast as float32's; a model not timed gets float32 and UNTUNED_THREADS."""
    best: dict[tuple[str, str], Timing] = {}
    for model, variant in {(t.model, t.variant) for t in timings}:
        candidates = sorted((t for t in timings if (t.model, t.variant) == (model, variant)), key=lambda t: t.threads)
        fastest = min(t.ms for t in candidates)
        best[model, variant] = next(t for t in candidates if t.ms <= fastest * THREADS_WITHIN)

    def pick(model: str) -> Timing | None:
        options = {variant: t for (m, variant), t in best.items() if m == model}
        if "float32" in options and "int8" in options:
            fast_enough = options["int8"].ms * INT8_MIN_SPEEDUP <= options["float32"].ms
            return options["int8" if fast_enough else "float32"]
        return next(iter(options.values()), None)

    detector, embedder, liveness = pick("detector"), pick("embedder"), pick("liveness")
    return ModelChoice(
        detector_quantization=detector.variant if detector else "float32",
        detector_threads=detector.threads if detector else UNTUNED_THREADS,
        embedder_threads=embedder.threads if embedder else UNTUNED_THREADS,
        liveness_quantization=liveness.variant if liveness else "float32",
        liveness_threads=liveness.threads if liveness else UNTUNED_THREADS)


def chosen(config: Config, tuning: Tuning | None = None) -> ModelChoice:
    """What runs: the configuration's explicit settings, the rest from ``tuning`` (without one: quantization
    auto by CPU architecture, UNTUNED_THREADS threads)."""
    tuned = tuning.choice if tuning is not None else None
    detector, recognition, liveness = config.detector, config.recognition, config.liveness

    def threads(value: int | None, tuned_value: int | None) -> int:
        return value if value is not None else tuned_value if tuned_value is not None else UNTUNED_THREADS

    detector_q = detector.quantization
    if detector_q == "auto":
        detector_q = tuned.detector_quantization if tuned else resolve_quantization("auto")
    liveness_q = liveness.quantization
    if liveness_q == "auto":
        liveness_q = tuned.liveness_quantization if tuned else "float32"
    return ModelChoice(detector_q, threads(detector.threads, tuned and tuned.detector_threads),
                       threads(recognition.threads, tuned and tuned.embedder_threads),
                       liveness_q, threads(liveness.threads, tuned and tuned.liveness_threads))


def load_tuning(path: Path, device: dict[str, Any]) -> Tuning | None:
    """The tuning stored at ``path`` when it was measured on ``device``; None (with the reason logged) when
    there is none, it is unreadable or it was measured on something else."""
    try:
        tuning = Tuning.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        log.warning("%s: not a usable device tuning (%s); measuring again", path, error)
        return None
    if tuning.device != device:
        changed = sorted(key for key in set(device) | set(tuning.device) if device.get(key) != tuning.device.get(key))
        log.info("%s: measured on another %s; measuring again", path, ", ".join(changed))
        return None
    return tuning


def store_tuning(path: Path, tuning: Tuning) -> None:
    """Write ``tuning`` to ``path`` atomically (a temporary file in the same folder, then renamed)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(tuning.to_json())
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError as error:
        raise TuningError(f"{path}: cannot store the device tuning ({error.strerror or error})") from None


def stored_tuning(config: Config) -> Tuning | None:
    """The tuning stored for this device and configuration, without measuring (None when there is none that
    fits, or ``tuning.enabled`` is off): what edge-enroll reads, so that it runs the daemon's models."""
    return load_tuning(config.tuning.file, device_key(config)) if config.tuning.enabled else None


def device_tuning(config: Config) -> Tuning | None:
    """The tuning for this device: the stored one while it fits, else measured now and stored (a tuning
    that cannot be stored is used for this run and the reason logged); None when ``tuning.enabled`` is off."""
    settings = config.tuning
    if not settings.enabled:
        return None
    tuning = stored_tuning(config)
    if tuning is not None:
        log.info("device tuning from %s (measured %s): %s", settings.file, tuning.measured_at, tuning.choice.describe())
        return tuning
    log.info("timing the models on this device (about %.0f s; edge-facerec --tune prints the table)",
             settings.budget_s + 1)
    tuning = measure(config)
    try:
        store_tuning(settings.file, tuning)
        where = f"stored in {settings.file}"
    except TuningError as error:
        log.warning("%s; it applies to this run only", error)
        where = "not stored"
    log.info("device tuning measured in %.1f s (%s): %s", tuning.seconds, where, tuning.choice.describe())
    if tuning.load > usable_cores() / 2:
        log.warning("the device was busy while its models were timed (load average %.1f): run edge-facerec --tune "
                    "again when it is idle", tuning.load)
    return tuning
