"""The package's shape: each folder is one stage, no module imports a stage above its own, no import cycle.

Every import in ``edge/`` (module level and inside functions, absolute and relative) is read
with ``ast``, resolved to the module it names, and checked against ``MAY_IMPORT``.
"""
from __future__ import annotations

import ast
import configparser
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "edge"
ROOT = "root"  # the shared vocabulary: edge/*.py (face, events, config, errors, image_files, names)
MAY_IMPORT = {
    ROOT: {ROOT},
    "runtime": {ROOT, "runtime"},
    "vision": {ROOT, "runtime", "vision"},
    "recognition": {ROOT, "runtime", "recognition"},
    "daemon": {ROOT, "runtime", "vision", "recognition", "daemon"},
    "enroll": {ROOT, "runtime", "vision", "recognition", "enroll"},
    "mqtt": {ROOT, "mqtt"},
    "actions": {ROOT, "mqtt", "actions"},
    "commands": {ROOT, "runtime", "vision", "recognition", "daemon", "enroll", "mqtt", "actions", "commands"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def stage_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else ROOT


def imports_in(source: str, package: str) -> set[str]:
    """The ``edge`` modules imported anywhere in ``source``, a module of ``package``."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:  # "from . import gallery" names a module, "from .x import y" a value
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return {name for name in found if name == "edge" or name.startswith("edge.")}


def imported_modules(module: str) -> set[str]:
    """The ``edge`` modules that ``module`` imports."""
    path = MODULES[module]
    return imports_in(path.read_text(), module if path.name == "__init__.py" else module.rpartition(".")[0])


GRAPH = {module: imported_modules(module) for module in MODULES}


def test_every_module_belongs_to_a_known_stage():
    assert {stage_of(module) for module in MODULES} <= set(MAY_IMPORT)


def test_setup_cfg_installs_every_package():
    setup = configparser.ConfigParser()
    setup.read(PACKAGE.parent / "setup.cfg")
    declared = set(setup["options"]["packages"].split())
    folders = {module for module, path in MODULES.items() if path.name == "__init__.py"}
    assert folders <= declared


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_stage_above_its_own(module):
    stage = stage_of(module)
    upward = sorted(f"{name} ({stage_of(name)})" for name in GRAPH[module] if stage_of(name) not in MAY_IMPORT[stage])
    assert not upward, f"{module} ({stage}) imports {', '.join(upward)}"


def test_nothing_below_the_commands_imports_them():
    importers = {module for module, names in GRAPH.items() if stage_of(module) != "commands"
                 and any(stage_of(name) == "commands" for name in names)}
    assert not importers


def test_no_import_cycle():
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(module):] + [module]))
        if module in done:
            return
        for name in sorted(GRAPH.get(module, ())):
            if name != "edge":  # the package's own __init__ imports nothing
                visit(name, path + [module])
        done.add(module)

    for module in MODULES:
        visit(module, [])


def test_the_checker_resolves_relative_and_lazy_imports():
    """What an upward import looks like inside edge/daemon/ is seen for what it is."""
    source = ("from ..mqtt.publisher import MqttPublisher\nfrom . import sinks\nfrom ..recognition import gallery\n"
              "def later():\n    import edge.commands.facerec\n")
    found = imports_in(source, "edge.daemon")
    assert found == {"edge.mqtt.publisher", "edge.daemon.sinks", "edge.recognition.gallery", "edge.commands.facerec"}
    assert {stage_of(name) for name in found} - MAY_IMPORT["daemon"] == {"mqtt", "commands"}
