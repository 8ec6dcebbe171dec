"""The parity windows a fold keeps beside its model (``parity.npz``): a few of its real model
inputs, so an ONNX export and a TensorRT engine are checked against the model without the
data that trained it (a Kaggle notebook has none of it)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from hmsbrain.atomic import atomic_path
from hmsbrain.core.inputs import IMAGE_INPUT, Batch

PARITY_ROWS = 8  # windows an export is checked on when the fold keeps none
PACKAGED_PARITY_ROWS = 4  # windows kept beside the model


def parity_rows(n_windows: int, n_rows: int = PARITY_ROWS) -> np.ndarray:
    """Positions of up to ``n_rows`` windows spread over a split of ``n_windows``."""
    rows = np.linspace(0, n_windows - 1, min(n_rows, n_windows)).round().astype(int)
    return np.unique(rows)


def save_parity_inputs(path: Path, inputs: Mapping[str, np.ndarray]) -> None:
    """Store the first :data:`PACKAGED_PARITY_ROWS` rows of model ``inputs`` compactly
    (float16; one channel of the grey image): at the full recipe a float32 512 x 512 x 3 image
    is 3 MB a window, and every fold ships its own."""
    compact = {
        k: (v[:PACKAGED_PARITY_ROWS, ..., :1] if k == IMAGE_INPUT else v[:PACKAGED_PARITY_ROWS])
        for k, v in inputs.items()
    }
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.savez_compressed(handle, **{k: v.astype(np.float16) for k, v in compact.items()})


def load_parity_inputs(path: Path) -> Batch:
    """The float32 model inputs :func:`save_parity_inputs` stored."""
    with np.load(path) as stored:
        inputs = Batch({k: stored[k].astype(np.float32) for k in stored.files})
    if IMAGE_INPUT in inputs:
        inputs[IMAGE_INPUT] = np.repeat(inputs[IMAGE_INPUT], 3, axis=-1)
    return inputs
