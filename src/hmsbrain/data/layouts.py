"""Every data layout other than HMS Kaggle's, recognised and read into :class:`Epochs`.

Four labelled layouts (each in its own module) and one unlabelled reader:

* ``folders``: ``<class>/<one epoch per file>`` (:mod:`hmsbrain.data.folders`)
* ``recordings``: EDF/BDF files with ``events.csv`` or annotations
  (:mod:`hmsbrain.data.recordings`)
* ``arrays``: ``X.npy`` + ``y.npy`` (:mod:`hmsbrain.data.arrays`)
* ``table``: ``epochs.csv`` listing files and labels (:mod:`hmsbrain.data.table`)
* :func:`read_windows`: sliding windows over unlabelled recordings, for prediction

``layout`` in ``dataset.yaml`` (:mod:`hmsbrain.data.spec`) picks one; without it the folder's
contents decide, the most specific sign first: arrays, table, recordings, folders.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hmsbrain.data.arrays import X_FILE, Y_FILE, read_arrays
from hmsbrain.data.base import DataError, Epochs, data_path
from hmsbrain.data.files import (
    MNE_SUFFIXES,
    is_signal_file,
    match_channels,
    read_signal_file,
    seconds_text,
    suffix,
)
from hmsbrain.data.folders import class_folders, read_folders
from hmsbrain.data.recordings import read_recordings
from hmsbrain.data.spec import SPEC_FILE, DatasetSpec, read_spec
from hmsbrain.data.table import TABLE_FILE, read_table

READERS: dict[str, Callable[[Path, DatasetSpec], Epochs]] = {
    "folders": read_folders,
    "recordings": read_recordings,
    "arrays": read_arrays,
    "table": read_table,
}

log = logging.getLogger(__name__)


def detect_layout(root: str | Path, spec: DatasetSpec) -> str:
    """``spec.layout``, or the layout the contents of ``root`` imply."""
    if spec.layout is not None:
        return spec.layout
    root = Path(root)
    if (root / X_FILE).is_file() and (root / Y_FILE).is_file():
        return "arrays"
    if (root / TABLE_FILE).is_file():
        return "table"
    top = [p for p in root.iterdir() if is_signal_file(p)]
    if (root / spec.events).is_file() or any(suffix(p) in MNE_SUFFIXES for p in top):
        return "recordings"
    if any(any(is_signal_file(p) for p in folder.iterdir()) for folder in class_folders(root)):
        if top:
            log.warning("%s: ignoring top-level files %s in the folders layout", root, top)
        return "folders"
    raise DataError(
        f"{root}: cannot tell the data layout: looked for {X_FILE} + {Y_FILE} (arrays), "
        f"{TABLE_FILE} (table), {spec.events} or .edf/.bdf files (recordings) and class "
        f"sub-folders holding signal files (folders), and found none; set layout in {SPEC_FILE}"
    )


def read_epochs(root: str | Path) -> Epochs:
    """Every epoch of the dataset in ``root``, whatever its layout.

    Epochs are labelled, except those of a table that has neither labels nor class columns.
    """
    root = data_path(root)
    spec = read_spec(root)
    layout = detect_layout(root, spec)
    epochs = READERS[layout](root, spec)
    log.info(
        "%s: %s layout, %d epochs of %d channels x %d samples at %g Hz, classes %s",
        root,
        layout,
        len(epochs),
        epochs.signals.shape[1],
        epochs.signals.shape[2],
        epochs.sfreq,
        list(epochs.classes),
    )
    return epochs


def read_windows(root: str | Path, window_seconds: float, stride_seconds: float) -> Epochs:
    """Unlabelled windows sliding over every signal file at the top of ``root``.

    Windows start at 0, ``stride_seconds``, ... and end within the file; a file shorter than
    one window gives none (a warning names it). Ids are ``<file stem>@<start seconds>``.
    ``dataset.yaml`` still gives the sampling rate, channels and units of text/.npy files.
    """
    root = data_path(root)
    if window_seconds <= 0 or stride_seconds <= 0:
        raise DataError(
            f"window ({window_seconds} s) and stride ({stride_seconds} s) must both be > 0"
        )
    spec = read_spec(root)
    # The tables of the labelled layouts sit beside the recordings; they are not signals.
    tables = {spec.events, TABLE_FILE}
    paths = sorted(p for p in root.iterdir() if is_signal_file(p) and p.name not in tables)
    if not paths:
        raise DataError(f"{root}: no signal files (.txt/.csv/.npy/.edf/.bdf) to cut into windows")
    stems = [p.stem for p in paths]
    repeated = sorted({s for s in stems if stems.count(s) > 1})
    if repeated:
        raise DataError(f"{root}: several files named {repeated[0]!r}; window ids would clash")

    signals: list[np.ndarray] = []
    files: list[str] = []
    ids: list[str] = []
    starts: list[float] = []
    first: tuple[Path, float, tuple[str, ...]] | None = None
    for path in paths:
        data, sfreq, channels = read_signal_file(path, spec)
        if first is None:
            first = (path, sfreq, channels)
        elif sfreq != first[1]:
            raise DataError(
                f"{path}: sampling rate {sfreq:g} Hz differs from {first[1]:g} Hz of {first[0]}"
            )
        data = match_channels(data, channels, first[2], path)
        window, stride = round(window_seconds * sfreq), round(stride_seconds * sfreq)
        offsets = range(0, data.shape[1] - window + 1, stride)
        if not offsets:
            log.warning(
                "%s: %g s long, shorter than one %g s window; no windows",
                path,
                data.shape[1] / sfreq,
                window_seconds,
            )
        for offset in offsets:
            signals.append(data[:, offset : offset + window])
            files.append(path.name)
            ids.append(f"{path.stem}@{seconds_text(offset / sfreq)}")
            starts.append(offset / sfreq)
    if first is None or not signals:
        raise DataError(f"{root}: every file is shorter than one {window_seconds:g} s window")
    return Epochs(
        signals=np.stack(signals),
        sfreq=first[1],
        channels=first[2],
        files=np.array(files),
        ids=np.array(ids),
        starts=np.array(starts),
    )
