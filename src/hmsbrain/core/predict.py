"""The prediction loop over any runtime: batches of rows in, class probabilities out, with the
run's test-time mirror, averaged per scoring unit.

Training validates, the OOF is predicted, ``predict.py`` and the Kaggle notebook predict, all
through :func:`predict_rows`, so a validation figure describes what is submitted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Protocol

import numpy as np
import pandas as pd
from tqdm import tqdm

from hmsbrain.core.mirror import Mirrorable, swap_batch


class Runtime(Protocol):
    """One fold model behind any engine (Keras, ONNX Runtime, TensorRT)."""

    name: str

    @property
    def input_names(self) -> tuple[str, ...]: ...

    def predict(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray: ...


class BatchSource(Protocol):
    """Where model inputs come from: the input cache or the recording store's stream."""

    def batch(
        self, rows: np.ndarray, shifts: np.ndarray | None = None
    ) -> Mapping[str, np.ndarray]: ...


def cpu_count() -> int:
    """CPUs this process may run on (a container's share, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def predict_rows(
    runtime: Runtime,
    source: BatchSource,
    rows: np.ndarray,
    batch_size: int,
    mirror: Mirrorable | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Probabilities ``(len(rows), classes)`` of ``rows``; with a ``mirror`` (TTA), averaged
    with the hemisphere-swapped input (a mirrored head shows the same pattern, so the label is
    kept)."""
    out = []
    starts = range(0, len(rows), batch_size)
    for start in tqdm(starts, desc="predicting", unit="batch", disable=not progress):
        batch = source.batch(rows[start : start + batch_size])
        probs = np.asarray(runtime.predict(batch))
        if mirror is not None:
            probs = 0.5 * (probs + np.asarray(runtime.predict(swap_batch(batch, mirror))))
        out.append(probs)
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def average_by_unit(
    ids: np.ndarray, probs: np.ndarray, classes: tuple[str, ...], id_column: str
) -> pd.DataFrame:
    """Mean prediction of each unit's rows (e.g. the labelled sub-windows of one recording):
    the id and one column per class, sorted by id."""
    frame = pd.DataFrame(np.asarray(probs, np.float64), columns=list(classes))
    frame.insert(0, id_column, ids)
    mean = frame.groupby(id_column, sort=True).mean()
    mean = mean.div(mean.sum(axis=1), axis=0)  # renormalise float32 round-off
    return mean.reset_index()
