"""On-disk cache of model inputs, so preprocessing runs once per dataset and recipe.

Inputs are stored as float16 ``.npy`` files opened as memory maps: a batch reads only its own
rows, so memory does not grow with the dataset. Only the inputs the model reads are computed
(``image``, ``raw`` or both), and only the files they need are opened.

The cache folder's name is a hash of everything the inputs depend on: the preprocessing code
version, the preprocessing config, the inputs asked for, the split, and the size and
modification time of every file it reads (tables, recordings, spectrograms). A fix to
preprocessing, a changed recipe or a replaced file therefore never reuses stale inputs. Each
build happens in a uniquely named temporary folder renamed into place at the end, so an
interrupted build is never mistaken for a complete one and two processes building at once never
delete each other's work.

With ``fallback``, a row whose files are bad input (a ``DataError``: missing, corrupt, too
short...) does not stop the build: its inputs are zeros, and the reason is kept in the cache's
``meta.json`` so the prediction can replace that row's output. Without it the first such row is
an error, as it is when a strict caller opens a cache that a fallback build left with failures.
Any other exception is a bug and stops the build with its traceback, unless ``count_bugs`` (the
Kaggle notebook, which must submit) makes it one more failed row, logged with its traceback and
named ``unexpected`` (:func:`hmsbrain.core.fallback.unexpected_reason`). A cache whose build met
a bug is never reused: the bug may be fixed since, and its rows are built again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hmsbrain.atomic import atomic_dir, write_json
from hmsbrain.config import Config, ConfigError
from hmsbrain.core.fallback import is_unexpected, unexpected_reason
from hmsbrain.core.inputs import Batch
from hmsbrain.data.base import DataError
from hmsbrain.data.dataset import Dataset
from hmsbrain.dsp.pipeline import PREPROCESS_VERSION

log = logging.getLogger(__name__)


@dataclasses.dataclass
class InputCache:
    """Memory-mapped inputs of every row of one split: ``image (N, H, W)`` and/or
    ``raw (N, T, channels)``; ``failed`` maps rows that could not be read to the reason."""

    root: Path
    arrays: dict[str, np.ndarray]
    failed: dict[int, str] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.arrays)

    def batch(self, rows: np.ndarray, shifts: np.ndarray | None = None) -> Batch:
        """float32 inputs of ``rows``; the grey image is repeated to the 3 channels models take.
        Cached windows cannot move (``shifts`` needs ``data.storage=recordings``)."""
        if shifts is not None:
            raise ConfigError("train.shift_seconds needs data.storage=recordings")
        out = Batch({k: np.asarray(v[rows], dtype=np.float32) for k, v in self.arrays.items()})
        if "image" in out:
            out["image"] = np.repeat(out["image"][..., None], 3, axis=-1)
        return out

    def input_shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.arrays[name].shape[1:])


@dataclasses.dataclass
class StreamInputs:
    """Model inputs computed when a batch is asked for, from the dataset itself (for HMS with
    ``data.storage=recordings``, windows cut from the recording store): nothing is cached, and
    windows can move (``shifts``). Same interface as :class:`InputCache`."""

    data: Dataset
    names: tuple[str, ...]
    failed: dict[int, str] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.data)

    def batch(self, rows: np.ndarray, shifts: np.ndarray | None = None) -> Batch:
        return self.data.inputs(np.asarray(rows), self.names, shifts)

    def input_shape(self, name: str) -> tuple[int, ...]:
        blank = self.data.blank_inputs(self.names)[name]
        return tuple(blank.shape[1:])


# Where model inputs come from: either source serves ``batch(rows)``.
Inputs = InputCache | StreamInputs


def open_inputs(data: Dataset, cfg: Config, names: Sequence[str], fallback: bool = False) -> Inputs:
    """Where training reads its inputs: the per-window cache, or the stream from the recording
    store (``data.storage``)."""
    if cfg.data.storage == "recordings":
        return StreamInputs(data, tuple(names))
    return open_cache(data, cfg, names, fallback=fallback)


def _file_stat(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None  # a missing file is part of the key too: it may appear later
    return stat.st_size, stat.st_mtime_ns


def cache_key(data: Dataset, cfg: Config, names: Sequence[str]) -> str:
    """Hash of everything the inputs ``names`` of ``data`` depend on (see the module doc)."""
    digest = hashlib.sha1()
    for path in data.input_files(names):
        digest.update(f"{path.name}:{_file_stat(path)};".encode())
    payload = {
        "version": PREPROCESS_VERSION,
        "source": type(data).__name__,
        "root": str(data.root.resolve()),
        "files": digest.hexdigest(),
        "split": data.split,
        "rows": len(data),
        "inputs": list(names),
        "preprocess": dataclasses.asdict(cfg.preprocess),
    }
    return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def open_cache(
    data: Dataset,
    cfg: Config,
    names: Sequence[str],
    batch_size: int = 64,
    fallback: bool = False,
    count_bugs: bool = False,
) -> InputCache:
    """The cache of inputs ``names`` of ``data`` under ``cfg.data.cache_dir``, built on first use.

    Without ``fallback``, a row that cannot be read is a DataError naming its file; with it, and
    ``count_bugs``, so is any exception (see the module doc)."""
    root = Path(cfg.data.cache_dir) / f"inputs-{data.split}-{cache_key(data, cfg, names)}"
    if (root / "meta.json").is_file():
        built = json.loads((root / "meta.json").read_text())
        if any(map(is_unexpected, built.get("failed", {}).values())):
            log.warning("%s: its build met a bug; building it again", root)
            shutil.rmtree(root)
    if not (root / "meta.json").is_file():
        with atomic_dir(root) as tmp:
            _build(data, names, tmp, batch_size, fallback, count_bugs)
    meta = json.loads((root / "meta.json").read_text())
    failed = {int(k): v for k, v in meta.get("failed", {}).items()}
    if failed and not fallback:
        row, reason = next(iter(failed.items()))
        raise DataError(f"{reason} (row {row}; {len(failed)} rows of {data.split} failed)")
    arrays = {name: np.load(root / f"{name}.npy", mmap_mode="r") for name in meta["inputs"]}
    return InputCache(root, arrays, failed)


def _rows_or_failures(
    data: Dataset, rows: np.ndarray, names: Sequence[str], fallback: bool, count_bugs: bool
) -> tuple[Batch | None, dict[int, str]]:
    """The inputs of ``rows``; with ``fallback``, rows that fail are retried one by one and the
    failing ones come back as reasons (their inputs zero)."""
    try:
        return data.inputs(rows, names), {}
    except DataError:
        if not fallback:
            raise
    except Exception:
        if not (fallback and count_bugs):
            raise
    failed: dict[int, str] = {}
    parts: dict[int, Batch] = {}
    for row in rows:
        try:
            parts[int(row)] = data.inputs([row], names)
        except DataError as exc:  # bad input, and the message names its file
            failed[int(row)] = str(exc)
            log.warning("row %d of %s cannot be used: %s", row, data.split, exc)
        except Exception as exc:
            if not count_bugs:
                raise
            unit = data.rows[data.id_column].iloc[row]
            failed[int(row)] = unexpected_reason(data.source(unit), exc)
            log.error(
                "UNEXPECTED ERROR in row %d of %s (%s), a bug, not bad input: it gets the class "
                "prior, and is counted",
                row,
                data.split,
                data.source(unit),
                exc_info=exc,
            )
    if not parts:
        return None, failed
    # Every input a good row has, for every row: a failed row's inputs are zeros in each of them.
    batch = Batch.stack(parts, [int(r) for r in rows], next(iter(parts.values())))
    return batch, failed


def _build(
    data: Dataset,
    names: Sequence[str],
    tmp: Path,
    batch_size: int,
    fallback: bool,
    count_bugs: bool,
) -> None:
    # Shapes come from a blank window, before any file is read: a split whose every row fails
    # (a one-EEG Kaggle test set) still gets a cache, and the fallback takes over.
    blank = data.blank_inputs(names)
    # The image's three channels are identical: one is stored. New files are zero-filled: the
    # inputs of failed rows.
    shapes = {k: v.shape[1:3] if k == "image" else v.shape[1:] for k, v in blank.items()}
    arrays = {
        name: np.lib.format.open_memmap(tmp / f"{name}.npy", "w+", np.float16, (len(data), *shape))
        for name, shape in shapes.items()
    }
    failed: dict[int, str] = {}
    # As a context manager the bar ends its line even when a row fails, so the error that
    # follows starts a line of its own.
    with tqdm(total=len(data), desc=f"preprocessing {data.split} inputs", unit="window") as bar:
        for start in range(0, len(data), batch_size):
            rows = np.arange(start, min(start + batch_size, len(data)))
            batch, bad = _rows_or_failures(data, rows, names, fallback, count_bugs)
            failed.update(bad)
            bar.update(len(rows))
            if batch is not None:
                for name, value in batch.items():
                    arrays[name][rows] = value[..., 0] if name == "image" else value
    for array in arrays.values():
        array.flush()
    write_json(
        tmp / "meta.json",
        {
            "rows": len(data),
            "split": data.split,
            "inputs": list(arrays),
            "failed": {str(k): v for k, v in failed.items()},
        },
    )
