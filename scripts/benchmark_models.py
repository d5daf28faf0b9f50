"""Per-model latency of the shipped TFLite models: fp32 and int8, 1 and 2 threads.

Runs with whichever interpreter is installed (ai-edge-litert, or tflite-runtime in a
numpy<2 environment) and prints a Markdown table: median and p90 milliseconds over
``--runs`` invocations after warm-up, and the number of XNNPACK-delegated partitions.

    python scripts/benchmark_models.py [--runs 100]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.runtime.interpreter import make_interpreter, runtime_name  # noqa: E402
from edge.runtime.model_files import ModelSpec, load_manifest, read_verified  # noqa: E402

INPUT_SHAPES = {
    "pnet": [(1, 480, 640, 3), (1, 144, 192, 3)],  # a 640x480 frame; its first level at minimum face 40
    "rnet": [(16, 24, 24, 3)],
    "onet": [(8, 48, 48, 3)],
    "embedder": [(1, 160, 160, 3)],
}


def delegated_partitions(interpreter) -> int:
    """Number of delegate nodes the interpreter added (1 means the whole graph is one partition)."""
    raw = interpreter._interpreter
    return sum(raw.NodeName(i) == "DELEGATE" for i in range(raw.NumNodes()))


def time_model(spec: ModelSpec, shape: tuple[int, ...], threads: int, runs: int) -> tuple[float, float, int]:
    """Median and p90 milliseconds, and delegated partitions, for one model at one input shape."""
    interpreter = make_interpreter(read_verified(spec), threads)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, list(shape), strict=False)
    interpreter.allocate_tensors()
    data = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    for _ in range(10):
        interpreter.set_tensor(index, data)
        interpreter.invoke()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        interpreter.set_tensor(index, data)
        interpreter.invoke()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.9 * (len(samples) - 1))], delegated_partitions(interpreter)


def main() -> None:
    """Print the latency table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--only", help="substring of the model names to benchmark")
    args = parser.parse_args()
    manifest = load_manifest()
    print(f"{runtime_name()} on {platform.machine()}, numpy {np.__version__}, {args.runs} runs after 10 warm-up")
    print("| model | input | threads | median ms | p90 ms | delegated partitions |")
    print("|---|---|---|---|---|---|")
    for name, spec in manifest.models.items():
        if args.only and args.only not in name:
            continue
        for shape in INPUT_SHAPES[spec.kind]:
            if spec.batch and shape[0] != spec.batch:
                shape = (spec.batch, *shape[1:])
            for threads in (1, 2):
                median, p90, partitions = time_model(spec, shape, threads, args.runs)
                print(f"| {name} | {'x'.join(map(str, shape))} | {threads} | {median:.2f} | {p90:.2f} | {partitions} |",
                      flush=True)


if __name__ == "__main__":
    main()
