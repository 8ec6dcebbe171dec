"""The recordings layout: continuous recordings, cut into epochs around labelled events.

The recordings are the raw files at the top of the folder, in any format of
:data:`hmsbrain.data.files.RAW_FORMATS` (EDF, BDF, GDF, FIF, BrainVision ``.vhdr``, EEGLAB
``.set``, CNT; read by :func:`mne.io.read_raw`, which picks the reader by suffix), or those the
globs of ``files`` in ``dataset.yaml`` choose (``files: ["S*R06.edf", "S*R10.edf"]``). Events
come from ``events.csv`` (its name set by ``events`` in ``dataset.yaml``) when it exists::

    file,onset,label[,duration][,subject]
    night1.edf,120.5,seizure

``onset`` is in seconds from the start of the file; ``duration`` is accepted and not used
(every epoch spans ``tmin``..``tmax``, as the model needs fixed-size inputs). Without an events
table, each file's own annotations are the events and their descriptions the labels, read by
:func:`mne.events_from_annotations` (as MNE names them: BrainVision markers are
``Stimulus/S  1``, ``Comment/...``).

``events: {T1: left, T2: right}`` maps descriptions (or table labels) to classes, as MNE's
``event_id`` does; the others are left out, counted in one log line. ``epochs: {from:
annotations, length: 30}`` cuts every annotated span into consecutive windows of 30 s instead
(MNE's ``chunk_duration``), as sleep-stage hypnograms need; a span shorter than one window
gives none (counted in the log), and a span past the end of its recording ends with it.

Epochs are cut by :class:`mne.Epochs`, so ``tmin``, ``tmax`` and ``baseline`` mean what they
mean in MNE: both ends are included (``round((tmax - tmin) * sfreq) + 1`` samples) and a
``[a, b]`` baseline subtracts each channel's mean over that part of the epoch. ``{first_seconds:
N}`` subtracts each channel's mean over the recording's first N seconds instead. Nothing is
rejected: an epoch that does not fit inside its recording is an error, not a silent drop.

:func:`cut_recordings` is the cutting itself, shared with the layouts whose recordings come
from elsewhere (CSV files with a marker column, BIDS roots): each hands it
:class:`Recording` objects.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hmsbrain.data.base import DataError, Epochs
from hmsbrain.data.files import (
    MNE_SUFFIXES,
    VOLTS_TO_UV,
    is_raw_file,
    pick_channels,
    read_raw,
    seconds_text,
)
from hmsbrain.data.spec import DatasetSpec, FirstSeconds, one_hot, resolve_classes, subject_id

# MNE is imported where recordings are cut (see hmsbrain.data.files): the Kaggle notebook
# imports this module through the data registry, and must not need it.
if TYPE_CHECKING:
    import mne

log = logging.getLogger(__name__)

# Onsets a warning shows of the events it counts.
_SHOWN = 5


@dataclass
class Event:
    """One labelled time point; ``where`` names its source (table line or annotation)."""

    file: str  # relative to the data root
    onset: float  # seconds from the start of the file
    label: str
    where: str
    subject: str | None = None


@dataclass
class Recording:
    """One continuous recording and its events, as a reader hands it to :func:`cut_recordings`."""

    name: str  # relative to the data root, as epoch ids and folds name it
    path: Path
    raw: mne.io.BaseRaw
    events: list[Event]  # labelled with their class (events: applied)


@dataclass
class _Cut:
    """The epochs cut from one recording, in onset order."""

    events: list[Event]
    data: np.ndarray  # (n, channels, samples) float64 microvolts
    starts: np.ndarray  # (n,) seconds from the start of the file


@dataclass
class Tally:
    """What the reader left out over every recording, for one log line each."""

    left_out: Counter[str] = field(default_factory=Counter)  # per description or label
    found: set[str] = field(default_factory=set)  # descriptions or labels events: maps
    short_spans: int = 0

    def finish(self, root: Path, spec: DatasetSpec) -> None:
        """Log what was left out; a name of ``events:`` that no file has is a DataError."""
        if self.left_out:
            counts = ", ".join(f"{n} {label} events" for label, n in self.left_out.items())
            log.info("%s: left out %s (not in events: of %s)", root, counts, spec.source)
        if self.short_spans:
            log.info(
                "%s: %d annotated spans shorter than one %g s window gave no epochs",
                root,
                self.short_spans,
                spec.epoch_length,
            )
        # A name of events: that no file has is a typo or the wrong files: its class would have
        # no epoch, and a run would then train and score the other classes alone.
        missing = [d for d in spec.event_map or {} if d not in self.found]
        if missing:
            raise DataError(
                f"{spec.source}: events: names {missing}, which no chosen recording has "
                f"(they have {sorted(self.found | set(self.left_out))})"
            )


def recording_files(
    root: Path,
    spec: DatasetSpec | None = None,
    is_recording: Callable[[Path], bool] = is_raw_file,
    kinds: str = "/".join(MNE_SUFFIXES),
) -> list[Path]:
    """The recordings at the top level of ``root``, or those the globs of ``spec.files`` choose
    (each glob must choose one at least), sorted by name. ``is_recording`` says which files are
    recordings (:func:`is_raw_file`: the raw formats), ``kinds`` names them in the error."""
    if spec is None or spec.files is None:
        return sorted(p for p in root.iterdir() if is_recording(p))
    chosen: set[Path] = set()
    for pattern in spec.files:
        matches = [p for p in root.glob(pattern) if is_recording(p)]
        if not matches:
            raise DataError(
                f"{root}: no recording ({kinds}) matches files: {pattern!r} of {spec.source}"
            )
        chosen.update(matches)
    return sorted(chosen)


def read_recordings(root: Path, spec: DatasetSpec) -> Epochs:
    """Epochs around every event of every recording, with hard labels."""
    require_window(spec, "the recordings layout")
    table = root / spec.events
    use_table = table.is_file() and spec.epoch_length is None
    if table.is_file() and not use_table:
        log.info("%s: not read; epochs: in %s cuts the files' annotations", table, spec.source)
    chosen = [p.relative_to(root).as_posix() for p in recording_files(root, spec)]
    table_events = read_events_table(root, table) if use_table else None
    if table_events is not None:
        names = list(dict.fromkeys(e.file for e in table_events))
        if spec.files is not None:
            left_out = [n for n in names if n not in chosen]
            if left_out:
                log.info("%s: events of %s left out: files: does not choose them", table, left_out)
            names = [n for n in names if n in chosen]
        unused = sorted(set(chosen) - set(names))
        if unused:
            log.info("%s: no events for %s; not read", table, unused)
    else:
        names = chosen

    tally = Tally()

    def recordings() -> Iterator[Recording]:
        for name in names:
            path = root / name
            raw = read_raw(path, spec)
            if table_events is not None:
                events = mapped([e for e in table_events if e.file == name], spec, tally)
            else:
                events = annotation_events(raw, name, path, spec, tally)
            yield Recording(name, path, raw, events)

    where = f" that events: of {spec.source} names" if spec.event_map is not None else ""
    return cut_recordings(
        root,
        spec,
        recordings(),
        tally,
        f"{root}: no events: no {spec.events} and no annotations in the recordings{where}",
    )


def require_window(spec: DatasetSpec, layout: str) -> None:
    """A DataError unless ``spec`` says where epochs start and end around their events."""
    if spec.tmax is None and spec.epoch_length is None:
        raise DataError(
            f"{spec.source}: tmax is required for {layout} "
            "(where each epoch ends, in seconds after its event), or epochs: {from: annotations, "
            "length: seconds} to cut annotated spans into windows"
        )


def cut_recordings(
    root: Path,
    spec: DatasetSpec,
    recordings: Iterable[Recording],
    tally: Tally,
    no_events: str,
    drop_outside: bool = False,
) -> Epochs:
    """The epochs of ``recordings``, cut around their events as ``spec`` says, with hard labels.

    ``recordings`` is read one at a time (a generator keeps one recording in memory), and fills
    ``tally`` as it goes; ``no_events`` is the error when no recording has an event to cut. An
    event whose epoch does not fit inside its recording is an error, or with ``drop_outside`` is
    left out, one warning per recording counting them.
    """
    cuts: list[_Cut] = []
    first: tuple[Path, float, tuple[str, ...]] | None = None
    for recording in recordings:
        path, raw = recording.path, recording.raw
        if not recording.events:
            log.warning("%s: no events to cut, so no epochs", path)
            continue
        channels = pick_channels(raw, spec.channels, path)
        if first is None:
            first = (path, float(raw.info["sfreq"]), channels)
        check_like_first(path, raw, channels, first)
        raw.pick(list(first[2]))
        raw.reorder_channels(list(first[2]))
        cuts.append(_cut(raw, recording.events, spec, path, drop_outside))
    tally.finish(root, spec)
    if first is None:
        raise DataError(no_events)
    cuts = [cut for cut in cuts if cut.events]
    if not cuts:
        raise DataError(f"{root}: no epoch fits inside its recording ({spec.source}: tmin, tmax)")

    events = [e for cut in cuts for e in cut.events]
    classes = event_classes(events, spec)
    return Epochs(
        signals=np.concatenate([cut.data for cut in cuts]).astype(np.float32),
        sfreq=first[1],
        channels=first[2],
        files=np.array([e.file for e in events]),
        ids=np.array([_epoch_id(e, cut) for cut in cuts for e in cut.events]),
        classes=classes,
        targets=one_hot([e.label for e in events], classes),
        hard=True,
        groups=event_groups(events, spec, root),
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
        if not is_raw_file(root / file):
            raise DataError(f"{where}: file {file!r} is not a recording ({'/'.join(MNE_SUFFIXES)})")
        subject = None
        if has_subject:
            if pd.isna(row.subject):
                raise DataError(f"{where}: no subject (there is a subject column, so one per row)")
            subject = str(row.subject)
        events.append(Event(Path(file).as_posix(), float(onsets[i]), str(label), where, subject))
    return events


def classes_of(labels: Sequence[str], spec: DatasetSpec, tally: Tally) -> list[str | None]:
    """The class ``events:`` maps each label to, None for a label it leaves out (without a map,
    each label is its class); ``tally`` counts the labels mapped and left out."""
    if spec.event_map is None:
        return list(labels)
    tally.left_out.update(label for label in labels if label not in spec.event_map)
    tally.found.update(label for label in labels if label in spec.event_map)
    return [spec.event_map.get(label) for label in labels]


def mapped(events: list[Event], spec: DatasetSpec, tally: Tally) -> list[Event]:
    """Events whose label ``events:`` maps, relabelled with their class (:func:`classes_of`)."""
    classes = classes_of([e.label for e in events], spec, tally)
    return [
        Event(e.file, e.onset, c, e.where, e.subject)
        for e, c in zip(events, classes, strict=True)
        if c is not None
    ]


def event_classes(
    events: Sequence[Event], spec: DatasetSpec, found: Sequence[str] | None = None
) -> tuple[str, ...]:
    """The class order of ``events`` (labelled with their class): ``classes:``, else the order
    ``events:`` gives, else ``found`` (the order the files give), else the sorted labels. An
    event whose class is not one of them is a DataError naming where it is."""
    if spec.event_map is not None and spec.classes is None:
        classes = tuple(dict.fromkeys(spec.event_map.values()))
    elif found is not None and spec.classes is None:
        classes = tuple(found)
    else:
        classes = resolve_classes((e.label for e in events), spec)
    for e in events:
        if e.label not in classes:
            raise DataError(
                f"{e.where}: label {e.label!r} is not one of the classes {list(classes)} "
                f"in {spec.source}"
            )
    return classes


def annotation_events(
    raw: mne.io.BaseRaw,
    name: str,
    path: Path,
    spec: DatasetSpec,
    tally: Tally,
    subject: str | None = None,
) -> list[Event]:
    """The file's annotations as events (every ``epochs.length`` seconds of each span with
    ``epochs:``), labelled by ``events:`` where it maps them."""
    annotations = raw.annotations
    descriptions = list(dict.fromkeys(annotations.description))
    if spec.event_map is not None:
        tally.left_out.update(d for d in annotations.description if d not in spec.event_map)
        descriptions = [d for d in descriptions if d in spec.event_map]
        tally.found.update(descriptions)
    if not descriptions:
        return []
    event_id = {d: code for code, d in enumerate(descriptions, 1)}
    length = spec.epoch_length
    if length is not None:
        # MNE cuts a window only where it fits inside the span; a tolerance keeps a span of
        # exactly one window (29.999999 s as stored) from being counted as short.
        kept = np.isin(annotations.description, descriptions)
        tally.short_spans += int((annotations.duration[kept] < length - 1e-6).sum())
    # regexp=None: every description is an event, as the user's map or the file says (MNE's
    # default would drop descriptions starting with "bad" or "edge").
    import mne

    mne_events, _ = mne.events_from_annotations(
        raw, event_id=event_id, regexp=None, chunk_duration=length, verbose="error"
    )
    description = {code: d for d, code in event_id.items()}
    events = []
    for sample, _, code in mne_events:
        onset = (sample - raw.first_samp) / raw.info["sfreq"]
        label = description[code]
        where = f"{path}: annotation {label!r} at {onset:g} s"
        events.append(
            Event(name, float(onset), (spec.event_map or {}).get(label, label), where, subject)
        )
    return events


def check_like_first(
    path: Path,
    inst: mne.io.BaseRaw | mne.BaseEpochs,
    channels: tuple[str, ...],
    first: tuple[Path, float, tuple[str, ...]],
) -> None:
    """A DataError unless a recording (or epochs) has the rate and the channels, in any order,
    of the ``first`` one read: its path, rate and channels."""
    first_path, first_sfreq, first_channels = first
    sfreq = float(inst.info["sfreq"])
    if sfreq != first_sfreq:
        raise DataError(
            f"{path}: sampling rate {sfreq:g} Hz differs from {first_sfreq:g} Hz "
            f"of {first_path}; every file must have the same rate"
        )
    if sorted(channels) != sorted(first_channels):
        raise DataError(
            f"{path}: channels differ from {first_path}: expected {list(first_channels)}, "
            f"found {list(channels)}"
        )


def _cut(
    raw: mne.io.BaseRaw, events: list[Event], spec: DatasetSpec, path: Path, drop_outside: bool
) -> _Cut:
    """Epochs of one recording around ``events``, in microvolts, baseline-corrected; an epoch
    that does not fit inside the recording is an error, or left out with ``drop_outside``."""
    sfreq = float(raw.info["sfreq"])
    if spec.epoch_length is not None:
        # A window of ``length`` seconds holds that many samples; MNE includes both ends.
        tmin, tmax = 0.0, (round(spec.epoch_length * sfreq) - 1) / sfreq
    else:
        assert spec.tmax is not None  # read_recordings asks for it first
        tmin, tmax = spec.tmin, spec.tmax
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
    import mne

    epochs = mne.Epochs(
        raw,
        mne_events,
        tmin=tmin,
        tmax=tmax,
        baseline=None if isinstance(spec.baseline, FirstSeconds) else spec.baseline,
        preload=True,
        reject=None,
        flat=None,
        reject_by_annotation=False,
        proj=False,
        # MNE's only warnings here are about dropped epochs, which the drop log below turns
        # into an error naming the event, or a warning counting them.
        verbose="error",
    )
    duration = raw.n_times / sfreq
    outside = [e for e, reason in zip(events, epochs.drop_log, strict=True) if reason]
    if outside and not drop_outside:
        event = outside[0]
        raise DataError(
            f"{path}: event {event.label!r} at onset {event.onset:g} s: its epoch "
            f"{event.onset + tmin:g}..{event.onset + tmax:g} s does not fit inside "
            f"the recording (0..{duration:g} s)"
        )
    if outside:
        log.warning(
            "%s: left out %d events whose epochs (%g..%g s around them) do not fit inside the "
            "recording (0..%g s), at %s s",
            path,
            len(outside),
            tmin,
            tmax,
            duration,
            ", ".join(f"{e.onset:g}" for e in outside[:_SHOWN])
            + (" ..." if len(outside) > _SHOWN else ""),
        )
        kept = np.array([not reason for reason in epochs.drop_log])
        events, samples = [e for e, k in zip(events, kept, strict=True) if k], samples[kept]
        if not events:
            return _Cut([], np.empty((0, len(raw.ch_names), len(epochs.times))), np.empty(0))
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


def event_groups(events: list[Event], spec: DatasetSpec, root: Path) -> np.ndarray | None:
    """The subject of each event: its own (an events table's, a BIDS subject, an epochs file's
    metadata), else what ``group_pattern`` captures from its file, else None."""
    if events[0].subject is not None:
        return np.array([e.subject for e in events])
    if spec.group_pattern is not None:
        return np.array([subject_id(e.file, spec, str(root / e.file)) for e in events])
    return None
