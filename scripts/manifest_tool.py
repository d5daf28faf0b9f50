"""Write entries of ``models/manifest.json`` (development tooling, used by the exporters)."""
from __future__ import annotations

import json
from pathlib import Path

from artifacts import sha256_of

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
MANIFEST = MODELS_DIR / "manifest.json"


def update_models(entries: dict[str, dict]) -> None:
    """Merge ``entries`` (name -> description) into the manifest, filling in each file's sha256."""
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {"format_version": 1, "models": {}}
    for name, entry in entries.items():
        entry = dict(entry)
        entry["sha256"] = sha256_of(MODELS_DIR / entry["file"])
        entry["size_bytes"] = (MODELS_DIR / entry["file"]).stat().st_size
        manifest["models"][name] = entry
    manifest["models"] = dict(sorted(manifest["models"].items()))
    MANIFEST.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


def set_default_embedder(name: str) -> None:
    """Record ``name`` as the embedder the package uses unless told otherwise."""
    manifest = json.loads(MANIFEST.read_text())
    if name not in manifest["models"]:
        raise SystemExit(f"{MANIFEST}: no model named {name!r}")
    manifest["defaults"] = {"embedder": name}
    MANIFEST.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Edit models/manifest.json")
    parser.add_argument("--default-embedder", required=True, help="model name to make the default embedder")
    set_default_embedder(parser.parse_args().default_embedder)
