"""``edge-facerec --tune``: time the models on this device, store the choice, print the table.

The table is what to send back when reporting speed on real hardware (docs/detector.md, "Device tuning").
"""
from __future__ import annotations

import sys

from ..config import Config
from ..vision.device_tuning import TuningError, chosen, measure, store_tuning


def tune(config: Config) -> int:
    """Measure, print and store; 0, or 1 when the choice could not be stored."""
    print(f"timing the detector, embedder and liveness models on this device ({config.tuning.budget_s:g} s of "
          "timed runs, plus loading them) ...", file=sys.stderr)
    tuning = measure(config)
    print(tuning.table())
    runs = chosen(config, tuning)
    if runs != tuning.choice:
        print(f"the configuration sets part of it: the daemon runs {runs.describe()}")
    if not config.tuning.enabled:
        print("tuning.enabled is false: the daemon does not use the tuning")
    try:
        store_tuning(config.tuning.file, tuning)
    except TuningError as error:
        print(f"edge-facerec: error: {error}", file=sys.stderr)
        return 1
    print(f"stored in {config.tuning.file}: used while the CPU, the runtime, the models and the camera size stay the same")
    return 0
