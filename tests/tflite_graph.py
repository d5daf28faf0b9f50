"""What a LiteRT interpreter made of a model, shared by the model tests and the exporters: how many
XNNPACK partitions, which ops stayed outside them, and how long an invoke takes."""
from __future__ import annotations

import time
from typing import Any

import numpy as np


def xnnpack_partitions(interpreter: Any) -> tuple[int, list[str]]:
    """Number of XNNPACK partitions of an allocated interpreter and the names of the ops left outside
    them: an op is inside a partition when it is reached backwards from the partition's outputs
    without crossing its inputs (the node list keeps the original ops next to the DELEGATE nodes)."""
    nodes = interpreter._get_ops_details()
    producer = {t: node["index"] for node in nodes if node["op_name"] != "DELEGATE" for t in node["outputs"]}
    delegates = [node for node in nodes if node["op_name"] == "DELEGATE"]
    inside: set[int] = set()
    for delegate in delegates:
        boundary, pending = set(delegate["inputs"]), list(delegate["outputs"])
        while pending:
            tensor = pending.pop()
            if tensor in boundary or tensor not in producer or producer[tensor] in inside:
                continue
            inside.add(producer[tensor])
            pending.extend(nodes[producer[tensor]]["inputs"])
    return len(delegates), [node["op_name"] for node in nodes
                            if node["op_name"] != "DELEGATE" and node["index"] not in inside]


def median_invoke_ms(interpreter: Any, runs: int) -> float:
    """Median milliseconds of ``runs`` invokes on the input already set."""
    interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))
