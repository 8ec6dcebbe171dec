"""The table layout: ``epochs.csv`` lists the epochs, each a file or a stretch of one.

Columns::

    file                 signal file, relative to the data folder (.txt/.csv/.npy, or a raw
                         format MNE reads: .edf/.bdf/.gdf/.fif/.vhdr/.set/.cnt)
    start, stop          optional: seconds within the file (empty = its start / its end)
    label                hard labels, or else one numeric column per class (soft labels:
                         probabilities or vote counts, normalised to sum to 1 per row)
    group                optional subject id

A table with neither labels nor class columns lists unlabelled epochs (for prediction).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from hmsbrain.data.base import DataError, Epochs
from hmsbrain.data.files import (
    SIGNAL_SUFFIXES,
    is_signal_file,
    match_channels,
    read_signal_file,
    seconds_text,
)
from hmsbrain.data.spec import DatasetSpec, one_hot, resolve_classes, soft_targets, subject_id

TABLE_FILE = "epochs.csv"
# Every other column of the table is a class column.
RESERVED_COLUMNS = ("file", "start", "stop", "label", "group")


def read_table(root: Path, spec: DatasetSpec) -> Epochs:
    """The epochs ``root/epochs.csv`` lists, with their labels and subjects."""
    path = root / TABLE_FILE
    table = _read_csv(path)
    lines = [f"{path}: line {i + 2}" for i in range(len(table))]
    files = [_file_name(root, f, where) for f, where in zip(table["file"], lines, strict=True)]
    start = _seconds(table, "start", lines)
    stop = _seconds(table, "stop", lines)

    signals: list[np.ndarray] = []
    starts: list[float] = []
    first: tuple[str, float, tuple[str, ...], int] | None = None
    # One file is read at a time: tables usually list a file's epochs together, and keeping
    # every file in memory could exceed it for long recordings.
    last: tuple[str, tuple[np.ndarray, float, tuple[str, ...]]] | None = None
    for i, name in enumerate(files):
        if last is None or last[0] != name:
            last = (name, read_signal_file(root / name, spec))
        data, sfreq, channels = last[1]
        if first is not None:
            if sfreq != first[1]:
                raise DataError(
                    f"{lines[i]}: {name!r} has sampling rate {sfreq:g} Hz, "
                    f"but {first[0]!r} has {first[1]:g} Hz"
                )
            data = match_channels(data, channels, first[2], root / name)
        n = data.shape[1]
        a = 0 if np.isnan(start[i]) else round(start[i] * sfreq)
        b = n if np.isnan(stop[i]) else round(stop[i] * sfreq)
        if not 0 <= a < b <= n:
            raise DataError(
                f"{lines[i]}: epoch {a / sfreq:g}..{b / sfreq:g} s is outside file {name!r} "
                f"(0..{n / sfreq:g} s) or empty"
            )
        if first is None:
            first = (name, sfreq, channels, b - a)
        elif b - a != first[3]:
            raise DataError(
                f"{lines[i]}: epoch of {b - a} samples, but line 2's has {first[3]}; "
                "every epoch must have the same length"
            )
        signals.append(data[:, a:b])
        starts.append(a / sfreq)
    if first is None:
        raise DataError(f"{path}: no epochs listed")

    classes, targets, hard, votes = _targets(path, table, lines, spec)
    return Epochs(
        signals=np.stack(signals),
        sfreq=first[1],
        channels=first[2],
        files=np.array(files),
        ids=_ids(files, starts, lines),
        classes=classes,
        targets=targets,
        hard=hard,
        votes=votes,
        groups=_groups(table, files, lines, spec, root),
        starts=np.array(starts),
    )


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, dtype={"file": str, "label": str, "group": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from exc
    if "file" not in table.columns:
        raise DataError(f"{path}: no 'file' column; found {list(table.columns)}")
    return table


def _file_name(root: Path, name: object, where: str) -> str:
    if pd.isna(name):
        raise DataError(f"{where}: no file")
    path = root / str(name)
    if not path.is_file():
        raise DataError(f"{where}: file {name!r} not found")
    if not is_signal_file(path):
        raise DataError(
            f"{where}: file {name!r} is not a signal file ({'/'.join(SIGNAL_SUFFIXES)})"
        )
    return path.relative_to(root).as_posix()


def _seconds(table: pd.DataFrame, column: str, lines: list[str]) -> np.ndarray:
    """A start/stop column in seconds; NaN where empty or absent (the file's start/end)."""
    if column not in table.columns:
        return np.full(len(table), np.nan)
    values = pd.to_numeric(table[column], errors="coerce")
    bad = values.isna() & table[column].notna()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{lines[i]}: {column} {table[column].iloc[i]!r} is not a number")
    return values.to_numpy(dtype=np.float64)


def _targets(
    path: Path, table: pd.DataFrame, lines: list[str], spec: DatasetSpec
) -> tuple[tuple[str, ...], np.ndarray | None, bool, np.ndarray | None]:
    """``(classes, targets, hard, votes)`` from the label column or the class columns."""
    class_columns = [str(c) for c in table.columns if c not in RESERVED_COLUMNS]
    if "label" in table.columns:
        if class_columns:
            raise DataError(
                f"{path}: both a label column and other columns "
                f"{class_columns}; give hard labels or class columns, not both"
            )
        labels = list(table["label"])
        for label, where in zip(labels, lines, strict=True):
            if pd.isna(label):
                raise DataError(f"{where}: no label")
        classes = resolve_classes(labels, spec)
        for label, where in zip(labels, lines, strict=True):
            if label not in classes:
                raise DataError(
                    f"{where}: label {label!r} is not one of the classes {list(classes)} "
                    f"in {spec.source}"
                )
        return classes, one_hot(labels, classes), True, None
    if not class_columns:
        return spec.classes or (), None, True, None
    classes = spec.classes or tuple(class_columns)
    if sorted(classes) != sorted(class_columns):
        raise DataError(
            f"{path}: class columns {class_columns} differ from the "
            f"classes {list(classes)} in {spec.source}"
        )
    values = np.empty((len(table), len(classes)))
    for j, c in enumerate(classes):
        column = pd.to_numeric(table[c], errors="coerce")
        bad = column.isna()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"{lines[i]}: class column {c!r}: {table[c].iloc[i]!r} is not a number")
        values[:, j] = column.to_numpy(dtype=np.float64)
    targets, votes = soft_targets(values, lines)
    return classes, targets, False, votes


def _ids(files: list[str], starts: list[float], lines: list[str]) -> np.ndarray:
    # A file with one epoch needs no time in its id; ids stay as short as they can be.
    per_file = Counter(files)
    ids = [
        f if per_file[f] == 1 else f"{f}@{seconds_text(s)}"
        for f, s in zip(files, starts, strict=True)
    ]
    seen: dict[str, int] = {}
    for i, epoch_id in enumerate(ids):
        if epoch_id in seen:
            raise DataError(f"{lines[i]}: the same epoch as {lines[seen[epoch_id]]} ({epoch_id})")
        seen[epoch_id] = i
    return np.array(ids)


def _groups(
    table: pd.DataFrame, files: list[str], lines: list[str], spec: DatasetSpec, root: Path
) -> np.ndarray | None:
    if "group" in table.columns:
        for group, where in zip(table["group"], lines, strict=True):
            if pd.isna(group):
                raise DataError(f"{where}: no group (the column is there, so every row needs one)")
        return table["group"].astype(str).to_numpy()
    if spec.group_pattern is not None:
        return np.array([subject_id(f, spec, str(root / f)) for f in files])
    return None
