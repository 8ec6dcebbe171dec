"""The markers layout: continuous CSV/TSV recordings with a marker column, as consumer headsets
write them (Muse through eeg-notebooks, OpenBCI, Emotiv exports)::

    timestamps,TP9,AF7,AF8,TP10,Right AUX,Marker0
    17667.684,22.949,23.926,27.344,28.809,111.816,1
    17667.688,23.438,21.484,22.461,27.832,71.289,0

One row per sample, a header naming the columns. ``dataset.yaml`` names:

* ``markers: Marker0``, the marker column; naming it is what makes a folder this layout. An
  event is each row where the marker changes to a value other than ``0`` or empty (a trigger
  held for several rows is one event, at its first row);
* ``events: {1: house, 2: face}``, the class of each marker value. A value it does not name is
  an error naming the line: unlike an EDF's annotations, a marker column holds the stimulus
  codes alone, so an unnamed one is a wrong map or a wrong column. Without ``events:`` every
  value is a class;
* ``channels: [TP9, AF7, AF8, TP10]``, the channel columns (default: every column but the
  markers and timestamps), read as 10-20 names like every file's;
* ``sample_rate: 256``, or ``timestamps: timestamps``, a column of sample times in seconds to
  derive it from (:func:`clock_rate`: checked for steps back, gaps and jitter);
* ``tmin`` and ``tmax`` (and ``baseline``), the epoch around each event, as in the recordings
  layout; ``group_pattern`` the subject in each file's path (``'(subject\\d+)/'``); ``files``
  globs choosing the files (default: the ``.csv``/``.tsv`` files at the top); ``units``.

Events are placed by row, not by timestamp: the samples are the device's regular clock, and
the timestamps a host's, stamped as packets arrive. Epochs are cut by the recordings layout's
:func:`~hmsbrain.data.recordings.cut_recordings`, except that an epoch running past the start or
end of its file is left out, one warning per file counting them: a headset recording is started
and stopped by hand while the stimulus program runs, so its first or last marker often has no
full epoch around it (the N170 set's last face, 0.6 s before one file's end).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from hmsbrain.data.base import DataError, Epochs
from hmsbrain.data.files import check_finite, first_line, read_names, suffix
from hmsbrain.data.layouts import LayoutSource
from hmsbrain.data.recordings import (
    Event,
    Recording,
    Tally,
    cut_recordings,
    mapped,
    recording_files,
)
from hmsbrain.data.registry import register_source
from hmsbrain.data.spec import DatasetSpec
from hmsbrain.dsp.montage import read_as_1020

MARKER_SUFFIXES = (".csv", ".tsv")
# How far a timestamp may stray from a regular clock. The host clock that stamps a headset's
# samples as its packets arrive (Lab Streaming Layer) jitters by tens of milliseconds: up to
# 0.06 s in the N170 set, with steps back of 0.04 s. More is a gap, a clock reset or a rate
# that is not constant.
MAX_JITTER = 0.1  # s
# A rate derived from timestamps within this fraction of a whole number of Hz is that number: a
# host clock runs apart from the device's by parts in ten thousand (256.02 Hz for a 256 Hz Muse).
WHOLE_HZ = 1e-3
# How far the timestamps' rate may be from a sample_rate stated beside them.
RATE_TOLERANCE = 5e-3

log = logging.getLogger(__name__)


def is_marker_file(path: Path) -> bool:
    """A CSV/TSV recording, by its name (``data.csv.csv`` too, as eeg-notebooks writes some)."""
    return path.is_file() and not path.name.startswith(".") and suffix(path) in MARKER_SUFFIXES


def read_markers(root: Path, spec: DatasetSpec) -> Epochs:
    """Epochs around every marker of every CSV/TSV recording, with hard labels."""
    if spec.epoch_length is not None:
        raise DataError(
            f"{spec.source}: epochs: cuts annotated spans, which CSV recordings do not have; "
            "use tmin and tmax around each marker"
        )
    if spec.tmax is None:
        raise DataError(
            f"{spec.source}: tmax is required for the markers layout (where each epoch ends, in "
            "seconds after its marker)"
        )
    if spec.sample_rate is None and spec.timestamps is None:
        raise DataError(
            f"{spec.source}: the markers layout needs sample_rate, or timestamps: the column of "
            "sample times (s) to derive the rate from"
        )
    paths = recording_files(root, spec, is_marker_file, "/".join(MARKER_SUFFIXES))
    tally = Tally()

    def recordings() -> Iterator[Recording]:
        for path in paths:
            name = path.relative_to(root).as_posix()
            yield _recording(path, name, spec, tally)

    return cut_recordings(
        root,
        spec,
        recordings(),
        tally,
        f"{root}: no markers in column {spec.markers!r} of any file",
        drop_outside=True,
    )


def _recording(path: Path, name: str, spec: DatasetSpec, tally: Tally) -> Recording:
    """One CSV/TSV file as an MNE recording in volts and its events, labelled by class."""
    import mne

    table = _read_table(path)
    columns = [str(c).strip() for c in table.columns]
    table.columns = columns
    assert spec.markers is not None  # the layout is chosen by it
    for key, column in (("markers", spec.markers), ("timestamps", spec.timestamps)):
        if column is not None and column not in columns:
            raise DataError(
                f"{path}: no column {column!r} ({key}: in {spec.source}); found {columns}"
            )
    if spec.timestamps is None:
        assert spec.sample_rate is not None  # read_markers asks for one of them
        sfreq = spec.sample_rate
    else:
        times = _numbers(table[spec.timestamps], path, spec.timestamps)
        sfreq = clock_rate(path, times, spec.sample_rate)
    signals = [c for c in columns if c not in (spec.markers, spec.timestamps)]
    names = read_names(signals, spec, path)
    wanted = names if spec.channels is None else read_as_1020(spec.channels)
    missing = [n for n in wanted if n not in names]
    if missing:
        raise DataError(
            f"{path}: missing channels {missing}; expected {list(wanted)}, found {signals}"
        )
    picked = [signals[names.index(n)] for n in wanted]
    data = np.stack([_numbers(table[c], path, c) for c in picked]) * spec.scale
    check_finite(path, data)
    info = mne.create_info(list(wanted), sfreq, "eeg")
    raw = mne.io.RawArray(data / 1e6, info, verbose="error")  # microvolts -> volts
    events = _marker_events(table[spec.markers], name, path, sfreq)
    if spec.event_map is not None:
        unknown = next((e for e in events if e.label not in spec.event_map), None)
        if unknown is not None:
            raise DataError(
                f"{unknown.where}: marker {unknown.label!r} is not in events: of {spec.source} "
                f"(it names {list(spec.event_map)}); name every marker value the column holds"
            )
    return Recording(name, path, raw, mapped(events, spec, tally))


def _read_table(path: Path) -> pd.DataFrame:
    _, sep = first_line(path)
    try:
        table = pd.read_csv(path, sep=sep, encoding="utf-8-sig")
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: not a readable table ({' '.join(str(exc).split())})") from exc
    if table.empty:
        raise DataError(f"{path}: no samples (a header row and nothing else)")
    return table


def _numbers(column: pd.Series, path: Path, name: str) -> np.ndarray:
    """A column as float64; a cell that is not a number is an error naming its line."""
    values = pd.to_numeric(column, errors="coerce")
    bad = values.isna() & column.notna()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path}: line {i + 2}: {name} {column.iloc[i]!r} is not a number")
    return values.to_numpy(dtype=np.float64)


def _marker_values(column: pd.Series) -> list[str]:
    """Each row's marker as text, ``""`` where there is none (0 or empty); whole numbers
    without a decimal point, as ``events:`` names them (``1.0`` is ``1``)."""
    numbers = pd.to_numeric(column, errors="coerce")
    if column.notna().sum() == numbers.notna().sum():
        return ["" if np.isnan(v) or v == 0 else f"{v:g}" for v in numbers.to_numpy(float)]
    texts = column.fillna("").astype(str).str.strip()
    return ["" if t in ("", "0") else t for t in texts]


def _marker_events(column: pd.Series, name: str, path: Path, sfreq: float) -> list[Event]:
    """An event at every row where the marker changes to a value: a trigger held for several
    rows is one event."""
    values = _marker_values(column)
    events = []
    for row, value in enumerate(values):
        if value and (row == 0 or values[row - 1] != value):
            where = f"{path}: line {row + 2}"
            events.append(Event(name, row / sfreq, value, where))
    return events


def clock_rate(path: Path, times: np.ndarray, stated: float | None = None) -> float:
    """The sampling rate that the timestamps ``times`` (s) of a file's samples give, checked.

    The timestamps must step forward (a step back of more than :data:`MAX_JITTER` is an error),
    without gaps (a step longer than the typical one by more than that), and stay within that
    of a straight line through them, whose slope is the rate: a whole number of Hz when it is
    within :data:`WHOLE_HZ` of one. With ``stated`` (``sample_rate``), the timestamps must agree
    with it, which is then the rate.
    """
    if len(times) < 2:
        raise DataError(f"{path}: fewer than 2 samples; no rate from timestamps")
    if not np.isfinite(times).all():
        i = int(np.flatnonzero(~np.isfinite(times))[0])
        raise DataError(f"{path}: line {i + 2}: no timestamp")
    steps = np.diff(times)
    period = float(np.median(steps))
    if period <= 0:
        raise DataError(f"{path}: timestamps go backwards or stand still (median step {period:g})")
    if period > 1:
        raise DataError(
            f"{path}: timestamps step by {period:g} per sample; they must be seconds "
            "(milliseconds?)"
        )
    back = np.flatnonzero(steps < -MAX_JITTER)
    if back.size:
        i = int(back[0])
        raise DataError(
            f"{path}: line {i + 3}: timestamps go backwards, {times[i + 1]:.6g} s after "
            f"{times[i]:.6g} s ({-steps[i]:.3g} s back; jitter is at most {MAX_JITTER:g} s)"
        )
    gaps = np.flatnonzero(steps > period + MAX_JITTER)
    if gaps.size:
        i = int(gaps[0])
        raise DataError(
            f"{path}: line {i + 3}: a gap of {steps[i] - period:.3g} s in the timestamps "
            f"({times[i]:.6g} -> {times[i + 1]:.6g} s); samples are missing"
        )
    rows = np.arange(len(times))
    slope, offset = np.polyfit(rows, times, 1)
    stray = np.abs(times - (offset + slope * rows))
    rate = 1 / slope
    if stray.max() > MAX_JITTER:
        i = int(stray.argmax())
        raise DataError(
            f"{path}: line {i + 2}: timestamps jitter by {stray.max():.3g} s around a regular "
            f"{rate:.6g} Hz clock (at most {MAX_JITTER:g} s); is the rate constant?"
        )
    if stated is not None:
        if abs(rate - stated) > RATE_TOLERANCE * stated:
            raise DataError(
                f"{path}: timestamps give {rate:.6g} Hz, but sample_rate is {stated:g} Hz"
            )
        return stated
    whole = round(rate)
    return float(whole) if abs(rate - whole) <= WHOLE_HZ * rate else round(rate, 2)


def _markers_missing(root: Path, spec: DatasetSpec) -> str | None:
    if spec.markers is None:
        return "no markers: column named in dataset.yaml"
    if spec.files is None and not any(is_marker_file(p) for p in root.iterdir()):
        return f"no {'/'.join(MARKER_SUFFIXES)} recordings at the top (or files: globs)"
    return None


MARKERS = register_source(
    LayoutSource(
        name="markers",
        priority=16,  # before the file-name signs: naming a marker column is the user's own
        signs="markers: in dataset.yaml + .csv/.tsv recordings",
        reader=read_markers,
        missing=_markers_missing,
    )
)
