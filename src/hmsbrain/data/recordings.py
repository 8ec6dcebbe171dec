"""The recordings layout: continuous EDF/BDF files, cut into epochs around labelled events.

Events come from ``events.csv`` (name set by ``events`` in ``dataset.yaml``) when it exists::

    file,onset,label[,duration][,subject]
    night1.edf,120.5,seizure

``onset`` is in seconds from the start of the file; ``duration`` is accepted and not used
(every epoch spans ``tmin``..``tmax``, as the model needs fixed-size inputs). Without an events
table, each file's own annotations are the events and their descriptions the labels.

Epochs are cut by :class:`mne.Epochs`, so ``tmin``, ``tmax`` and ``baseline`` mean what they
mean in MNE: both ends are included (``round((tmax - tmin) * sfreq) + 1`` samples) and a
``[a, b]`` baseline subtracts each channel's mean over that part of the epoch. ``{first_seconds:
N}`` subtracts each channel's mean over the recording's first N seconds instead. Nothing is
rejected: an epoch that does not fit inside its recording is an error, not a silent drop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import mne
import numpy as np
import pandas as pd

from hmsbrain.data.base import DataError, Epochs
from hmsbrain.data.files import (
    MNE_SUFFIXES,
    VOLTS_TO_UV,
    is_signal_file,
    pick_channels,
    read_raw,
    seconds_text,
    suffix,
)
from hmsbrain.data.spec import DatasetSpec, FirstSeconds, one_hot, resolve_classes, subject_id

log = logging.getLogger(__name__)


@dataclass
class Event:
    """One labelled time point; ``where`` names its source (table line or annotation)."""

    file: str  # relative to the data root
    onset: float  # seconds from the start of the file
    label: str
    where: str
    subject: str | None = None


@dataclass
class _Cut:
    """The epochs cut from one recording, in onset order."""

    events: list[Event]
    data: np.ndarray  # (n, channels, samples) float64 microvolts
    starts: np.ndarray  # (n,) seconds from the start of the file


def recording_files(root: Path) -> list[Path]:
    """The EDF/BDF files at the top level of ``root``, sorted by name."""
    return sorted(p for p in root.iterdir() if is_signal_file(p) and suffix(p) in MNE_SUFFIXES)


def read_recordings(root: Path, spec: DatasetSpec) -> Epochs:
    """Epochs around every event of every recording, with hard labels."""
    if spec.tmax is None:
        raise DataError(
            f"{spec.source}: tmax is required for the recordings layout "
            "(where each epoch ends, in seconds after its event)"
        )
    table = root / spec.events
    table_events = read_events_table(root, table) if table.is_file() else None
    if table_events is not None:
        names = list(dict.fromkeys(e.file for e in table_events))
        unused = sorted({p.name for p in recording_files(root)} - set(names))
        if unused:
            log.info("%s: no events for %s; not read", table, unused)
    else:
        names = [p.relative_to(root).as_posix() for p in recording_files(root)]

    cuts: list[_Cut] = []
    first: tuple[Path, float, tuple[str, ...]] | None = None
    for name in names:
        path = root / name
        raw = read_raw(path)
        if table_events is not None:
            events = [e for e in table_events if e.file == name]
        else:
            events = _annotation_events(raw, name, path)
        if not events:
            log.warning("%s: no annotations, so no epochs", path)
            continue
        channels = pick_channels(raw, spec.channels, path)
        if first is None:
            first = (path, float(raw.info["sfreq"]), channels)
        _check_like_first(path, raw, channels, first)
        raw.pick(list(first[2]))
        raw.reorder_channels(list(first[2]))
        cuts.append(_cut(raw, events, spec, path))
    if first is None:
        raise DataError(
            f"{root}: no events: no {spec.events} and no annotations in the EDF/BDF files"
        )

    events = [e for cut in cuts for e in cut.events]
    classes = resolve_classes((e.label for e in events), spec)
    for e in events:
        if e.label not in classes:
            raise DataError(
                f"{e.where}: label {e.label!r} is not one of the classes {list(classes)} "
                f"in {spec.source}"
            )
    return Epochs(
        signals=np.concatenate([cut.data for cut in cuts]).astype(np.float32),
        sfreq=first[1],
        channels=first[2],
        files=np.array([e.file for e in events]),
        ids=np.array([_epoch_id(e, cut) for cut in cuts for e in cut.events]),
        classes=classes,
        targets=one_hot([e.label for e in events], classes),
        hard=True,
        groups=_groups(events, spec, root),
        starts=np.concatenate([cut.starts for cut in cuts]),
    )


def read_events_table(root: Path, path: Path) -> list[Event]:
    """``events.csv`` checked row by row: every file must exist and every onset be a number."""
    try:
        table = pd.read_csv(path, dtype={"file": str, "label": str, "subject": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from exc
    missing = [c for c in ("file", "onset", "label") if c not in table.columns]
    if missing:
        raise DataError(
            f"{path}: missing columns {missing}; found {list(table.columns)} "
            "(needs file, onset, label; optional duration, subject)"
        )
    if table.empty:
        raise DataError(f"{path}: no events")
    onsets = pd.to_numeric(table["onset"], errors="coerce")
    has_subject = "subject" in table.columns
    events = []
    for i, row in enumerate(table.itertuples(index=False)):
        where = f"{path}: line {i + 2}"
        file, label = row.file, row.label
        if pd.isna(file) or pd.isna(label) or pd.isna(onsets[i]):
            raise DataError(f"{where}: needs a file, a numeric onset and a label")
        if not (root / file).is_file():
            raise DataError(f"{where}: file {file!r} not found")
        if suffix(Path(file)) not in MNE_SUFFIXES:
            raise DataError(f"{where}: file {file!r} is not an EDF/BDF recording")
        subject = None
        if has_subject:
            if pd.isna(row.subject):
                raise DataError(f"{where}: no subject (there is a subject column, so one per row)")
            subject = str(row.subject)
        events.append(Event(Path(file).as_posix(), float(onsets[i]), str(label), where, subject))
    return events


def _annotation_events(raw: mne.io.BaseRaw, name: str, path: Path) -> list[Event]:
    annotations = raw.annotations
    # Annotation onsets count from the recording's start time; the first sample may be later.
    onsets = annotations.onset - raw.first_time
    return [
        Event(name, float(onset), str(label), f"{path}: annotation {label!r} at {onset:g} s")
        for onset, label in zip(onsets, annotations.description, strict=True)
    ]


def _check_like_first(
    path: Path,
    raw: mne.io.BaseRaw,
    channels: tuple[str, ...],
    first: tuple[Path, float, tuple[str, ...]],
) -> None:
    first_path, first_sfreq, first_channels = first
    sfreq = float(raw.info["sfreq"])
    if sfreq != first_sfreq:
        raise DataError(
            f"{path}: sampling rate {sfreq:g} Hz differs from {first_sfreq:g} Hz "
            f"of {first_path}; every recording must have the same rate"
        )
    if sorted(channels) != sorted(first_channels):
        raise DataError(
            f"{path}: channels differ from {first_path}: expected {list(first_channels)}, "
            f"found {list(channels)}"
        )


def _cut(raw: mne.io.BaseRaw, events: list[Event], spec: DatasetSpec, path: Path) -> _Cut:
    """Epochs of one recording around ``events``, in microvolts, baseline-corrected."""
    sfreq = float(raw.info["sfreq"])
    events = sorted(events, key=lambda e: e.onset)
    samples = np.array([round(e.onset * sfreq) for e in events]) + raw.first_samp
    repeated = np.flatnonzero(np.diff(samples) == 0)
    if repeated.size:
        a, b = events[repeated[0]], events[repeated[0] + 1]
        raise DataError(
            f"{path}: two events at onset {a.onset:g} s ({a.label!r}, {b.label!r}); "
            "one epoch per time point"
        )
    mne_events = np.column_stack([samples, np.zeros_like(samples), np.ones_like(samples)])
    epochs = mne.Epochs(
        raw,
        mne_events,
        tmin=spec.tmin,
        tmax=spec.tmax,
        baseline=None if isinstance(spec.baseline, FirstSeconds) else spec.baseline,
        preload=True,
        reject=None,
        flat=None,
        reject_by_annotation=False,
        proj=False,
        # MNE's only warnings here are about dropped epochs, which the drop log below turns
        # into an error naming the event.
        verbose="error",
    )
    duration = raw.n_times / sfreq
    for event, reason in zip(events, epochs.drop_log, strict=True):
        if reason:
            raise DataError(
                f"{path}: event {event.label!r} at onset {event.onset:g} s: its epoch "
                f"{event.onset + spec.tmin:g}..{event.onset + spec.tmax:g} s does not fit inside "
                f"the recording (0..{duration:g} s)"
            )
    data = epochs.get_data(copy=True) * VOLTS_TO_UV
    if isinstance(spec.baseline, FirstSeconds):
        n = round(spec.baseline.seconds * sfreq)
        if n > raw.n_times:
            raise DataError(
                f"{path}: baseline first_seconds {spec.baseline.seconds:g} in {spec.source} is "
                f"longer than the recording ({duration:g} s)"
            )
        data -= raw.get_data(stop=n).mean(axis=1)[None, :, None] * VOLTS_TO_UV
    starts = (samples - raw.first_samp) / sfreq + epochs.times[0]
    return _Cut(events, data, starts)


def _epoch_id(event: Event, cut: _Cut) -> str:
    # A recording with one event needs no time in its id; ids stay as short as they can be.
    if len(cut.events) == 1:
        return event.file
    return f"{event.file}@{seconds_text(event.onset)}"


def _groups(events: list[Event], spec: DatasetSpec, root: Path) -> np.ndarray | None:
    if events[0].subject is not None:
        return np.array([e.subject for e in events])
    if spec.group_pattern is not None:
        return np.array([subject_id(Path(e.file).name, spec, str(root / e.file)) for e in events])
    return None
