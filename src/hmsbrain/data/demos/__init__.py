"""Embedded demos in the generic layouts a user's own data would have, made from a seed.

Each demo stands for a kind of dataset the generic readers (:mod:`hmsbrain.data.layouts`) must
handle, and is built so that the project's point shows on it: a convolutional network on the raw
signals beats a band-power model, because the classes differ in phase-locked waveforms (shape,
latency, polarity, topography) that change band power little, under background and artefacts
that change it a lot.

* ``emotiv``: 14-channel consumer headset, continuous EDF recordings with an events table
  (rest / blink / jaw clench), the recordings layout;
* ``trials64``: 64-channel lab ERP experiment (standard / target), the arrays layout;
* ``mindwave``: single-channel consumer headset, 19 stimulus classes, the class-folders layout.

:func:`ensure_demo` generates a demo on first use and reuses it afterwards. The source of each
demo's layout lists it (:mod:`hmsbrain.data.layouts`), which is how ``demo:<name>`` reaches it
(:mod:`hmsbrain.data.registry`).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

from hmsbrain.atomic import atomic_dir, write_json
from hmsbrain.data.demos import emotiv, mindwave, trials64

DEMOS: dict[str, ModuleType] = {"emotiv": emotiv, "trials64": trials64, "mindwave": mindwave}
MARKER = "demo.json"


def _read_marker(path: Path) -> dict | None:
    """The marker's content; None when unreadable (e.g. edited by hand), so it is regenerated."""
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None


def ensure_demo(name: str, root: Path, seed: int) -> Path:
    """The demo ``name`` at ``root``, generated on first use (or when its seed or generator
    version changed) and reused otherwise.

    Generation builds a uniquely named sibling folder that replaces ``root`` only once complete
    (so an interrupted or concurrent generation never leaves a half-written dataset), and writes
    the marker last. A non-empty ``root`` without the marker is not ours to delete (a mistyped
    path to the user's own data): that raises FileExistsError.
    """
    if name not in DEMOS:
        raise ValueError(f"unknown demo {name!r}; choose one of: {', '.join(DEMOS)}")
    root = Path(root)
    wanted = {"name": name, "generator_version": DEMOS[name].GENERATOR_VERSION, "seed": seed}
    marker = root / MARKER
    if marker.is_file():
        if _read_marker(marker) == wanted:
            return root
    elif root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(f"{root}: exists and is not a generated demo; choose another folder")
    with atomic_dir(root, replace=True) as tmp:
        DEMOS[name].generate(tmp, seed)
        write_json(tmp / MARKER, wanted)
    return root
