"""The package's layers point down only: a test parses every import of ``src/hmsbrain`` and
fails on one that reaches up a layer or across to a peer.

From the bottom: the atomic writer, the config schema, then ``core`` and the run-folder layout;
``dsp``; ``data``; ``models``; ``training`` and ``inference`` side by side (neither imports the
other); ``hms``, the competition on top of the library; the tools ``diagnose`` and ``bench``;
the command lines. Imports inside functions count too.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "hmsbrain"
LAYERS: tuple[tuple[str, ...], ...] = (
    ("atomic",),
    ("config",),
    ("core", "runs"),
    ("dsp",),
    ("data",),
    ("models",),
    ("training", "inference"),
    ("hms",),
    ("diagnose", "bench"),
    ("cli", "benchmark", "estimator"),
    ("__main__",),
)
LEVEL = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def part_of(module: str) -> str | None:
    """The top-level part of ``hmsbrain.<part>...``, or None outside the package."""
    pieces = module.split(".")
    return pieces[1] if pieces[0] == "hmsbrain" and len(pieces) > 1 else None


def upward_imports(package: Path) -> list[str]:
    """``file: part -> imported part`` for every import of ``package`` that points up a layer
    or across to a peer of the same layer."""
    found = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if relative.parts == ("__init__.py",):
            continue
        own = relative.parts[0].removesuffix(".py")
        assert own in LEVEL, f"{relative}: a new part of the package; give it a layer in LAYERS"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                other = part_of(target)
                if other is None or other == own:
                    continue
                if LEVEL[other] >= LEVEL[own]:
                    found.append(f"{relative}:{node.lineno}: {own} -> {other} ({target})")
    return found


def test_every_import_points_down_a_layer():
    assert upward_imports(PACKAGE) == []


def test_an_upward_import_is_caught(tmp_path):
    """The check itself: one import of ``inference`` from ``training`` (a peer), and one of
    ``models`` from ``dsp`` (a layer up), added to a copy of the package, are both reported."""
    copy = tmp_path / "hmsbrain"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / "training" / "batches.py").open("a") as handle:
        handle.write("\n\ndef _late():\n    from hmsbrain.inference import predict\n")
    with (copy / "dsp" / "filters.py").open("a") as handle:
        handle.write("\nimport hmsbrain.models.registry\n")
    found = set(upward_imports(copy)) - set(upward_imports(PACKAGE))
    assert len(found) == 2
    assert any("training -> inference" in line for line in found)
    assert any("dsp -> models" in line for line in found)
