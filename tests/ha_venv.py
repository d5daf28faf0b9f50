"""The Home Assistant core the integration test runs: its own virtual environment, cached outside the tree.

    python tests/ha_venv.py            # create it if it is not there yet, print where it is
    python tests/ha_venv.py --where    # only print where it would be

Home Assistant needs Python >= 3.13 (PINS' release), which is not the project's interpreter: it is
looked for as ``python3.13`` (or newer) on PATH and in pyenv's versions (``pyenv root``). The venv
is made with uv when uv can be had from PyPI (``pip install uv`` into its own small venv; about
1 min), else with pip (several minutes). It lives in ``$EDGE_HA_CACHE`` (default
``~/.cache/edge-facerec-ci``) under a name keyed by the pins and the interpreter, so a change of pin
makes a new one and an unchanged one is reused.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

# homeassistant and the two packages its components load that --skip-pip will not install: the MQTT
# integration's client and the frontend (http serves it); versions from the release's manifests.
PINS = {"homeassistant": "2025.4.4", "paho-mqtt": "2.1.0", "home-assistant-frontend": "20250411.0"}
MIN_PYTHON = (3, 13)


def cache_dir() -> Path:
    """Where the venvs (and uv) are kept between runs."""
    return Path(os.environ.get("EDGE_HA_CACHE", Path.home() / ".cache" / "edge-facerec-ci"))


def _version(python: Path) -> tuple[int, int] | None:
    try:
        out = subprocess.run([str(python), "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True,
                             text=True, timeout=30, check=True).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return int(out[0]), int(out[1])


def find_python() -> Path | None:
    """A Python >= 3.13: python3.13+ on PATH, else the newest in pyenv's versions; None when there is none."""
    candidates = [Path(found) for name in ("python3.14", "python3.13") if (found := shutil.which(name))]
    pyenv = shutil.which("pyenv")
    root = os.environ.get("PYENV_ROOT")
    if root is None and pyenv:
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=30).stdout.strip() or None
    if root is None and (Path.home() / ".pyenv").is_dir():  # pyenv installed but not on this PATH
        root = str(Path.home() / ".pyenv")
    if root:
        versions = sorted(Path(root, "versions").glob("3.*/bin/python3"), reverse=True,
                          key=lambda path: tuple(int(x) for x in path.parent.parent.name.split(".")[:2]
                                                 if x.isdigit()))
        candidates += versions
    for python in candidates:
        version = _version(python)
        if version is not None and version >= MIN_PYTHON:
            return python
    return None


def venv_dir(python: Path) -> Path:
    """The venv for these pins and this interpreter."""
    key = hashlib.sha256(repr((sorted(PINS.items()), str(python.resolve()), _version(python))).encode()).hexdigest()
    return cache_dir() / f"ha-venv-{key[:12]}"


COMPLETE = ".complete"  # written last: a venv without it is a broken install, made again


def hass(venv: Path) -> Path:
    """The ``hass`` program of a venv."""
    return venv / "bin" / "hass"


def ready(venv: Path) -> bool:
    """Whether ``venv`` was installed completely."""
    return (venv / COMPLETE).exists() and hass(venv).exists()


def _uv() -> Path | None:
    """uv, from PATH or installed from PyPI into its own venv in the cache; None when it cannot be had."""
    found = shutil.which("uv")
    if found:
        return Path(found)
    tool = cache_dir() / "uv-venv"
    uv = tool / "bin" / "uv"
    if not uv.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(tool)], check=True)
            subprocess.run([str(tool / "bin" / "pip"), "install", "--quiet", "uv"], check=True)
        except (OSError, subprocess.CalledProcessError) as error:
            print(f"uv not available ({error}); using pip", flush=True)
            return None
    return uv


def install(python: Path) -> Path:
    """Create the venv unless it is ready."""
    target = venv_dir(python)
    if ready(target):
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    requirements = [f"{name}=={version}" for name, version in PINS.items()]
    uv = _uv()
    if uv is not None:
        subprocess.run([str(uv), "venv", "--quiet", "--python", str(python), str(target)], check=True)
        subprocess.run([str(uv), "pip", "install", "--quiet", "--python", str(target / "bin" / "python"),
                        *requirements], check=True)
    else:
        subprocess.run([str(python), "-m", "venv", str(target)], check=True)
        subprocess.run([str(target / "bin" / "pip"), "install", "--quiet", *requirements], check=True)
    (target / COMPLETE).write_text(" ".join(requirements) + "\n")
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--where", action="store_true", help="only print the venv's folder")
    args = parser.parse_args()
    python = find_python()
    if python is None:
        print("no Python >= 3.13 (python3.13 on PATH or in pyenv): the Home Assistant test will skip")
        return 0
    if args.where:
        print(venv_dir(python))
        return 0
    existed = ready(venv_dir(python))
    started = time.monotonic()
    venv = install(python)
    print(f"Home Assistant {PINS['homeassistant']} in {venv} with {python}: "
          f"{'reused' if existed else 'installed'} in {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
