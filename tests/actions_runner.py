"""``edge-actions`` as a process for the tests: its config written from a dict, its log followed line by line."""
from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

# writes its argv and the environment it got as one JSON line to the file named first
RECORDER = ("import json, os, sys; open(sys.argv[1], 'a').write(json.dumps({'argv': sys.argv[2:], "
            "'env': dict(os.environ)}) + '\\n')")


def recorder(out: Path, *argv: str) -> list[str]:
    """A rule's command that records its run in ``out``."""
    return [sys.executable, "-c", RECORDER, str(out), *argv]


class ActionsProcess:
    """``python -m edge.commands.actions --config FILE``, started at once; stop() ends it with SIGTERM."""

    def __init__(self, config: dict, folder: Path, environ: dict[str, str] | None = None) -> None:
        path = folder / "actions.yaml"
        path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        self.process = subprocess.Popen([sys.executable, "-m", "edge.commands.actions", "--config", str(path)],
                                        stderr=subprocess.PIPE, text=True, env={**os.environ, **(environ or {})})
        self._lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=lambda: [self._lines.put(line) for line in self.process.stderr], daemon=True).start()

    def wait_log(self, text: str, timeout: float = 10) -> None:
        """Wait until a log line contains ``text``; fail with the log so far when none does in time."""
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.log):
            try:
                self.log.append(self._lines.get(timeout=max(0.05, deadline - time.monotonic())))
            except queue.Empty:
                pytest.fail(f"no log line with {text!r} in:\n{''.join(self.log)}")

    def stop(self) -> int:
        """SIGTERM, then its exit status."""
        self.process.terminate()
        return self.process.wait(timeout=10)
