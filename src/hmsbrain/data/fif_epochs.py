"""The epochs layout: MNE epochs files (``*-epo.fif``, as :meth:`mne.Epochs.save` writes them),
the usual output of a researcher's own preprocessing, used as they are.

The files are those at the top of the folder, or those the globs of ``files`` choose. Every
epoch keeps its file's rate, length and baseline; channels are the file's EEG channels, or
``channels:``, read as 10-20 names like every file's. All files must agree on rate, channels
and length.

An epoch's class is the name its file's ``event_id`` gives its event code (``face/left`` is a
name like any other). ``events: {face: face, house: house}`` maps names to classes and leaves
out the rest, as for annotations; the class order is ``classes:``, else the map's, else
``event_id``'s. A dataset of one class is an error: there is nothing to classify.

Subjects are the values of the metadata column ``group_column`` names (``mne.Epochs.metadata``),
else what ``group_pattern`` captures from the file's name, else each file is a group (its
epochs stay in one fold). Epoch ids are ``<file>@<event time in s>``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hmsbrain.data.base import DataError, Epochs
from hmsbrain.data.files import (
    EPOCHS_ENDINGS,
    VOLTS_TO_UV,
    is_epochs_file,
    mne_errors,
    pick_channels,
    rename_channels,
    seconds_text,
)
from hmsbrain.data.layouts import LayoutSource
from hmsbrain.data.recordings import (
    Event,
    Tally,
    check_like_first,
    classes_of,
    event_classes,
    event_groups,
    recording_files,
)
from hmsbrain.data.registry import register_source
from hmsbrain.data.spec import DatasetSpec, one_hot

# MNE is imported where a file is read (see hmsbrain.data.files).
if TYPE_CHECKING:
    import mne


def read_epochs_files(root: Path, spec: DatasetSpec) -> Epochs:
    """Every epoch of every ``-epo.fif`` file, with hard labels from ``event_id``."""
    paths = recording_files(root, spec, is_epochs_file, "/".join(EPOCHS_ENDINGS))
    tally = Tally()
    signals: list[np.ndarray] = []
    events: list[Event] = []
    names: dict[str, None] = {}  # every event_id name with an epoch, in event_id's order
    first: tuple[Path, float, tuple[str, ...], int] | None = None
    for path in paths:
        epochs = _read(path, spec)
        channels = pick_channels(epochs, spec.channels, path)
        if first is None:
            first = (path, float(epochs.info["sfreq"]), channels, len(epochs.times))
        _check_like_first(path, epochs, channels, first)
        file_events = _events(epochs, path.relative_to(root).as_posix(), path, spec)
        labels = {e.label for e in file_events}
        names.update(dict.fromkeys(n for n in epochs.event_id if n in labels))
        classes = classes_of([e.label for e in file_events], spec, tally)
        kept = np.array([c is not None for c in classes], dtype=bool)
        signals.append(epochs.get_data(picks=list(first[2]))[kept] * VOLTS_TO_UV)
        events += [
            Event(e.file, e.onset, c, e.where, e.subject)
            for e, c in zip(file_events, classes, strict=True)
            if c is not None
        ]
    tally.finish(root, spec)
    if first is None or not events:
        raise DataError(f"{root}: no epochs in {[p.name for p in paths]}")
    classes = event_classes(events, spec, list(names))
    present = sorted({e.label for e in events})
    if len(present) < 2:
        where = paths[0] if len(paths) == 1 else root
        raise DataError(
            f"{where}: every epoch is of one class, {present[0]!r}; a classifier needs two "
            "classes at least"
        )
    ids = [f"{e.file}@{seconds_text(e.onset)}" for e in events]
    repeated = [i for i, n in Counter(ids).items() if n > 1]
    if repeated:
        raise DataError(f"{root}: several epochs have the same event time, {repeated[0]}")
    return Epochs(
        signals=np.concatenate(signals).astype(np.float32),
        sfreq=first[1],
        channels=first[2],
        files=np.array([e.file for e in events]),
        ids=np.array(ids),
        classes=classes,
        targets=one_hot([e.label for e in events], classes),
        hard=True,
        groups=event_groups(events, spec, root),
    )


def _read(path: Path, spec: DatasetSpec) -> mne.BaseEpochs:
    import mne

    with mne_errors(path, "MNE epochs file"):
        epochs = mne.read_epochs(path, preload=True, verbose="warning")
    rename_channels(epochs, spec, path)
    return epochs


def _check_like_first(
    path: Path,
    epochs: mne.BaseEpochs,
    channels: tuple[str, ...],
    first: tuple[Path, float, tuple[str, ...], int],
) -> None:
    """As :func:`check_like_first`, and epochs of the first file's number of samples."""
    first_path, sfreq, first_channels, samples = first
    check_like_first(path, epochs, channels, (first_path, sfreq, first_channels))
    if len(epochs.times) != samples:
        raise DataError(
            f"{path}: epochs of {len(epochs.times)} samples, but {first_path} has {samples}; "
            "every epoch must have the same length"
        )


def _events(epochs: mne.BaseEpochs, name: str, path: Path, spec: DatasetSpec) -> list[Event]:
    """One event per epoch, labelled by the name ``event_id`` gives its code, with its subject
    from the metadata column ``group_column`` names."""
    names = {code: label for label, code in epochs.event_id.items()}
    subjects = _subjects(epochs, path, spec)
    sfreq = float(epochs.info["sfreq"])
    events = []
    for i, (sample, _, code) in enumerate(epochs.events):
        where = f"{path}: epoch {i}"
        if code not in names:
            raise DataError(f"{where}: event code {code} has no name in event_id {epochs.event_id}")
        subject = None if subjects is None else subjects[i]
        events.append(Event(name, sample / sfreq, names[code], where, subject))
    return events


def _subjects(epochs: mne.BaseEpochs, path: Path, spec: DatasetSpec) -> list[str] | None:
    column = spec.group_column
    if column is None:
        return None
    metadata = epochs.metadata
    if metadata is None or column not in metadata.columns:
        found = "no metadata" if metadata is None else f"columns {list(metadata.columns)}"
        raise DataError(
            f"{path}: no metadata column {column!r} (group_column: in {spec.source}); the "
            f"epochs have {found}"
        )
    values = metadata[column]
    if values.isna().any():
        i = int(np.flatnonzero(values.isna())[0])
        raise DataError(f"{path}: epoch {i} has no {column} in its metadata")
    return [str(v) for v in values]


def _epochs_missing(root: Path, spec: DatasetSpec) -> str | None:
    chosen = root.iterdir() if spec.files is None else (p for g in spec.files for p in root.glob(g))
    if not any(is_epochs_file(p) for p in chosen):
        where = "at the top" if spec.files is None else f"that files: of {spec.source} chooses"
        return f"no {'/'.join(EPOCHS_ENDINGS)} files {where}"
    return None


EPOCHS = register_source(
    LayoutSource(
        name="epochs",
        priority=35,  # before the recordings, whose FIF files these are not
        signs=f"{'/'.join(EPOCHS_ENDINGS)} files",
        reader=read_epochs_files,
        missing=_epochs_missing,
    )
)
