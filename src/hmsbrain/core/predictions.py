"""The one file schema of every prediction a run writes, out of fold or on a test split.

A prediction file is a parquet table ``<id>, fold, <one probability column per class>`` (for
HMS: ``eeg_id, fold, seizure_vote .. other_vote``; ``fold`` is -1 for an average over folds).
How it was made travels inside the same file, as JSON in the parquet schema metadata: the kind
(``oof`` or the split predicted), whether hemisphere-swap TTA was on, the data folder, the
runtime, and the rows that got a fallback prediction. One file means one atomic write: a
prediction and its description can never disagree, and ``ensemble.py`` needs nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hmsbrain.atomic import atomic_path

META_KEY = b"hmsbrain"
FOLD = "fold"
FOLD_AVERAGE = -1


class PredictionError(ValueError):
    """A prediction that must not be written or used; the message names the row and its file."""


@dataclass
class Predictions:
    frame: pd.DataFrame  # id, fold, class probabilities; one row per scored unit
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def tta(self) -> bool | None:
        return self.meta.get("tta")


def probability_columns(frame: pd.DataFrame) -> list[str]:
    """The class columns: everything after the id and ``fold``."""
    return [c for c in frame.columns[1:] if c != FOLD]


def check_finite(frame: pd.DataFrame, source: Callable[[Any], str] | None = None) -> None:
    """Raise PredictionError naming the first row (and its input file) that is not finite."""
    values = frame[probability_columns(frame)].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        first = frame.iloc[int(np.flatnonzero(bad)[0]), 0]
        where = f" (input {source(first)})" if source is not None else ""
        more = f"; {int(bad.sum()) - 1} more rows too" if bad.sum() > 1 else ""
        raise PredictionError(
            f"the prediction for {frame.columns[0]} {first}{where} is not finite{more}; "
            "nothing was written"
        )


def write_predictions(
    frame: pd.DataFrame,
    path: str | Path,
    meta: dict[str, Any],
    source: Callable[[Any], str] | None = None,
) -> Path:
    """Write ``frame`` with ``meta`` atomically, after checking every probability is finite.

    ``source(id)`` names the input file of a row, for the error message."""
    check_finite(frame, source)
    return write_table(frame, path, meta)


def write_table(frame: pd.DataFrame, path: str | Path, meta: dict[str, Any]) -> Path:
    """``frame`` (without its index) as parquet with ``meta`` as JSON in the schema metadata,
    written atomically: the one way the project stores a table and its description."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    schema_meta = {**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()}
    path = Path(path)
    with atomic_path(path) as tmp:
        pq.write_table(table.replace_schema_metadata(schema_meta), tmp)
    return path


def read_table(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A table :func:`write_table` wrote and its metadata (empty when it has none); a missing
    file is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(META_KEY)
    return table.to_pandas(), json.loads(raw) if raw else {}


def read_predictions(path: str | Path) -> Predictions:
    """A prediction file and its metadata (empty for files written before it was recorded)."""
    return Predictions(*read_table(path))
