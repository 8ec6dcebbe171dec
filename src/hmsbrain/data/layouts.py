"""The library's generic layouts, each a data source, recognised and read into :class:`Epochs`.

Four labelled layouts (each read by its own module) are registered here as peers of any other
source (:mod:`hmsbrain.data.registry`), in detection order:

* ``arrays``: ``X.npy`` + ``y.npy`` (:mod:`hmsbrain.data.arrays`; ``X.npy`` alone: epochs to
  predict), demo ``trials64``
* ``table``: ``epochs.csv`` listing files and labels (:mod:`hmsbrain.data.table`)
* ``recordings``: raw files of any format MNE reads (EDF, BDF, GDF, FIF, BrainVision, EEGLAB,
  CNT) with ``events.csv`` or annotations (:mod:`hmsbrain.data.recordings`), demo ``emotiv``;
  a test folder of recordings without events is predicted in sliding windows
  (:func:`read_windows`)
* ``folders``: ``<class>/<one epoch per file>`` (:mod:`hmsbrain.data.folders`), demo
  ``mindwave``

A layout of its own module registers a :class:`LayoutSource` there, the same way (MNE epochs
files, CSV recordings with a marker column, BIDS roots); :func:`layout_sources` finds them all
in the registry.

The layout is ``data.layout`` when it names one, else ``layout`` in ``dataset.yaml``
(:mod:`hmsbrain.data.spec`), else the folder's contents, the most specific sign first. Both
names must agree, and the folder must fit the layout named: otherwise a :class:`DataError`
names the folder and what it lacks, before any reader runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hmsbrain.config import Config
from hmsbrain.data.arrays import X_FILE, Y_FILE, read_arrays
from hmsbrain.data.base import DataError, Epochs, data_path
from hmsbrain.data.dataset import Dataset, EpochDataset
from hmsbrain.data.demos import ensure_demo
from hmsbrain.data.files import (
    MNE_SUFFIXES,
    SIGNAL_SUFFIXES,
    is_raw_file,
    is_signal_file,
    match_channels,
    read_signal_file,
    seconds_text,
)
from hmsbrain.data.folders import class_folders, read_folders
from hmsbrain.data.recordings import read_recordings
from hmsbrain.data.registry import AUTO, DemoMaker, Source, all_sources, register_source
from hmsbrain.data.spec import SPEC_FILE, DatasetSpec, read_spec
from hmsbrain.data.table import TABLE_FILE, read_table

log = logging.getLogger(__name__)


def _arrays_missing(root: Path, spec: DatasetSpec) -> str | None:
    # y.npy is optional: X.npy alone is new epochs to predict (data/arrays.py).
    return None if (root / X_FILE).is_file() else f"no {X_FILE}"


def _table_missing(root: Path, spec: DatasetSpec) -> str | None:
    return None if (root / TABLE_FILE).is_file() else f"no {TABLE_FILE}"


def _recordings_missing(root: Path, spec: DatasetSpec) -> str | None:
    if (root / spec.events).is_file():
        return None
    if any(is_raw_file(p) for p in root.iterdir()):
        return None
    return f"no {spec.events} and no recordings ({'/'.join(MNE_SUFFIXES)}) at the top"


def _folders_missing(root: Path, spec: DatasetSpec) -> str | None:
    if any(any(is_signal_file(p) for p in folder.iterdir()) for folder in class_folders(root)):
        return None
    return "no class sub-folders holding signal files"


def unlabelled_recordings(root: Path) -> bool:
    """A folder of recordings with no events file: new data to predict in sliding windows."""
    has_recordings = any(is_raw_file(p) for p in root.iterdir())
    return has_recordings and not (root / "events.csv").is_file()


def _epoch_dataset(epochs: Epochs, root: Path, split: str, cfg: Config) -> EpochDataset:
    # Every file at the top (dataset.yaml, events.csv, X.npy...) keys the input cache.
    extra = [p for p in root.iterdir() if p.is_file()]
    return EpochDataset(epochs, root, split, cfg.preprocess, extra)


def _demo(name: str) -> DemoMaker:
    return lambda root, seed: ensure_demo(name, root, seed)


@dataclass(frozen=True, kw_only=True)
class LayoutSource(Source):
    """A generic layout: read once into :class:`Epochs` by ``reader``, preprocessed by the
    generic pipeline (:class:`EpochDataset`). ``missing`` says what a folder lacks for the
    layout (None when it fits); detection is that check, unless ``dataset.yaml`` names a
    layout."""

    reader: Callable[[Path, DatasetSpec], Epochs]
    missing: Callable[[Path, DatasetSpec], str | None]

    def detect(self, root: Path) -> bool:
        if not root.is_dir():
            return False
        spec = read_spec(root)
        if spec.layout is not None:
            return spec.layout == self.name
        return self.missing(root, spec) is None

    def open(
        self, cfg: Config, root: Path, split: str, window_seconds: float, fallback: bool
    ) -> Dataset:
        """The labelled epochs of ``root``. The generic layouts have no test split of their
        own: ``test`` is the labelled epochs of a held-out folder in the same layout."""
        # data.layout itself, not this source's name: with ``auto``, the detection that chose
        # this source runs again here, so an error names dataset.yaml or the contents, not a
        # setting the user never made.
        return _epoch_dataset(read_epochs(root, cfg.data.layout), root, split, cfg)


@dataclass(frozen=True, kw_only=True)
class RecordingsSource(LayoutSource):
    """Recordings with events; also new, unlabelled recordings to predict."""

    def open(
        self, cfg: Config, root: Path, split: str, window_seconds: float, fallback: bool
    ) -> Dataset:
        """As :meth:`LayoutSource.open`, except that ``test`` on a folder of recordings without
        events is sliding windows of ``preprocess.window_seconds`` (default ``window_seconds``:
        the length of the epochs the model was trained on) every ``preprocess.stride_seconds``
        (default half that)."""
        if split != "test" or not unlabelled_recordings(root):
            return super().open(cfg, root, split, window_seconds, fallback)
        window = cfg.preprocess.window_seconds or window_seconds
        if window <= 0:
            raise DataError(
                f"{root}: no window length for sliding-window prediction; set "
                "preprocess.window_seconds"
            )
        stride = cfg.preprocess.stride_seconds or window / 2
        return _epoch_dataset(read_windows(root, window, stride), root, split, cfg)


# Gaps in the priorities leave room for another source before or between these.
ARRAYS = register_source(
    LayoutSource(
        name="arrays",
        priority=20,
        signs=f"{X_FILE} (+ {Y_FILE})",
        demos={"trials64": _demo("trials64")},
        reader=read_arrays,
        missing=_arrays_missing,
    )
)
TABLE = register_source(
    LayoutSource(
        name="table", priority=30, signs=TABLE_FILE, reader=read_table, missing=_table_missing
    )
)
RECORDINGS = register_source(
    RecordingsSource(
        name="recordings",
        priority=40,
        signs=f"events.csv or {'/'.join(MNE_SUFFIXES)} files",
        demos={"emotiv": _demo("emotiv")},
        reader=read_recordings,
        missing=_recordings_missing,
    )
)
FOLDERS = register_source(
    LayoutSource(
        name="folders",
        priority=50,
        signs="class sub-folders holding signal files",
        demos={"mindwave": _demo("mindwave")},
        reader=read_folders,
        missing=_folders_missing,
    )
)


def layout_sources() -> dict[str, LayoutSource]:
    """Every registered generic layout by name, in detection order: these four, and those
    registered by their own modules."""
    return {s.name: s for s in all_sources() if isinstance(s, LayoutSource)}


def detect_layout(root: str | Path, spec: DatasetSpec) -> str:
    """``spec.layout``, or the layout the contents of ``root`` imply."""
    if spec.layout is not None:
        return spec.layout
    root = Path(root)
    layouts = layout_sources()
    for source in layouts.values():
        if source.missing(root, spec) is None:
            if source is FOLDERS:
                top = [p for p in root.iterdir() if is_signal_file(p)]
                if top:
                    log.warning("%s: ignoring top-level files %s in the folders layout", root, top)
            return source.name
    looked = ", ".join(f"{s.signs} ({s.name})" for s in layouts.values())
    raise DataError(
        f"{root}: cannot tell the data layout: looked for {looked}, and found none; set layout "
        f"in {SPEC_FILE}"
    )


def choose_layout(root: Path, spec: DatasetSpec, layout: str = AUTO) -> str:
    """The generic layout ``root`` is read in: ``layout`` (``data.layout``) unless ``auto``,
    else ``spec.layout``, else the one detected; a layout named must fit the folder."""
    if layout == AUTO and spec.layout is None:
        return detect_layout(root, spec)
    if layout != AUTO and spec.layout not in (None, layout):
        raise DataError(
            f"{spec.source}: layout: {spec.layout} contradicts data.layout={layout}; make them "
            "agree or remove one"
        )
    named, by = (layout, f"data.layout={layout}") if layout != AUTO else (spec.layout, spec.source)
    layouts = layout_sources()
    if named not in layouts:
        raise DataError(f"{root}: {by} is not a generic layout ({', '.join(layouts)})")
    missing = layouts[named].missing(root, spec)
    if missing is not None:
        raise DataError(f"{root}: not in the {named} layout that {by} names: {missing}")
    return named


def read_epochs(root: str | Path, layout: str = AUTO) -> Epochs:
    """Every epoch of the dataset in ``root``, in ``layout`` (``auto``: as :func:`choose_layout`
    finds it).

    Epochs are labelled, except those of a table that has neither labels nor class columns.
    """
    root = data_path(root)
    spec = read_spec(root)
    layout = choose_layout(root, spec, layout)
    epochs = layout_sources()[layout].reader(root, spec)
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
        raise DataError(
            f"{root}: no signal files ({'/'.join(SIGNAL_SUFFIXES)}) to cut into windows"
        )
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
