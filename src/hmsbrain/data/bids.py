"""The bids layout: a BIDS root, the format of public EEG on OpenNeuro, read through MNE-BIDS.

A folder is a BIDS root when it holds ``dataset_description.json``. Its recordings are the EEG
ones (``sub-*/[ses-*/]eeg/*_eeg.<ext>``, any format MNE-BIDS reads) that ``bids:`` in
``dataset.yaml`` chooses by entity, each a label or a list of labels (all of them without it)::

    bids: {task: faces, subject: ["01", "02"], session: "1", run: [1, 2]}

:func:`mne_bids.read_raw_bids` reads each with the events of its ``events.tsv`` as annotations
(named by ``trial_type``) and the channel types of its ``channels.tsv``. From there it is the
recordings layout: ``events:`` maps the events to classes, ``tmin``/``tmax`` (or ``epochs:``)
cut the epochs, the EEG channels are read (ECG, EOG, triggers... as ``channels.tsv`` types them
are left out) and named as 10-20 names. The subjects (``sub-<label>``) are the groups.

A recording without an ``events.tsv`` (a resting-state run) gives no epochs, a warning naming
it; the file's own markers (a BrainVision ``.vmrk``'s) are not BIDS events and are not read.
A root where no chosen recording has events is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from hmsbrain.data.base import DataError, Epochs
from hmsbrain.data.files import mne_errors, rename_channels
from hmsbrain.data.layouts import LayoutSource
from hmsbrain.data.recordings import (
    Recording,
    Tally,
    annotation_events,
    cut_recordings,
    require_window,
)
from hmsbrain.data.registry import register_source
from hmsbrain.data.spec import BIDS_FILTERS, DatasetSpec

# MNE-BIDS is imported where a BIDS root is read, as MNE is (see hmsbrain.data.files).
if TYPE_CHECKING:
    import mne
    from mne_bids import BIDSPath

DESCRIPTION = "dataset_description.json"
# The EEG formats BIDS allows (BrainVision, EDF, BDF, EEGLAB), and FIF, which MNE-BIDS writes.
EXTENSIONS = (".vhdr", ".edf", ".bdf", ".set", ".fif")

log = logging.getLogger(__name__)


def read_bids(root: Path, spec: DatasetSpec) -> Epochs:
    """Epochs around the events of every chosen EEG recording of the BIDS root ``root``."""
    require_window(spec, "the bids layout")
    paths = bids_recordings(root, spec)
    tally = Tally()

    def recordings() -> Iterator[Recording]:
        for bids_path in paths:
            path = Path(bids_path.fpath)
            events_file = bids_path.find_matching_sidecar("events", ".tsv", on_error="ignore")
            if events_file is None:
                log.warning("%s: no events.tsv, so no epochs", path)
                continue
            raw = _read(bids_path, path, spec)
            name = path.relative_to(root).as_posix()
            events = annotation_events(raw, name, path, spec, tally, subject=bids_path.subject)
            yield Recording(name, path, raw, events)

    return cut_recordings(
        root,
        spec,
        recordings(),
        tally,
        f"{root}: no events: none of the {len(paths)} EEG recordings chosen has an events.tsv "
        "with events" + (f" that events: of {spec.source} names" if spec.event_map else ""),
    )


def bids_recordings(root: Path, spec: DatasetSpec) -> list[BIDSPath]:
    """The EEG recordings of the BIDS root ``root`` that ``spec.bids`` chooses, sorted; none is
    an error naming the labels the root has."""
    import mne_bids

    filters = spec.bids or {}
    with mne_errors(root, "BIDS root"):
        paths = mne_bids.find_matching_paths(
            root,
            **{f"{entity}s": list(labels) for entity, labels in filters.items()},
            datatypes="eeg",
            suffixes="eeg",
            extensions=list(EXTENSIONS),
            ignore_nosub=True,  # derivatives/ and sourcedata/ are not the raw recordings
        )
    if not paths:
        with mne_errors(root, "BIDS root"):
            found = {e: mne_bids.get_entity_vals(root, e) for e in filters or BIDS_FILTERS}
        has = ", ".join(f"{entity} {labels}" for entity, labels in found.items())
        wanted = ", ".join(f"{entity} {list(labels)}" for entity, labels in filters.items())
        chosen = f" of bids: {wanted} in {spec.source}" if filters else ""
        raise DataError(f"{root}: no EEG recording{chosen}; the root has {has}")
    return sorted(paths, key=lambda p: str(p.fpath))


def _read(bids_path: BIDSPath, path: Path, spec: DatasetSpec) -> mne.io.BaseRaw:
    import mne_bids

    with mne_errors(path, "BIDS recording"):
        raw = mne_bids.read_raw_bids(bids_path, verbose="warning")
        raw.load_data(verbose="warning")
    rename_channels(raw, spec, path)
    return raw


def _bids_missing(root: Path, spec: DatasetSpec) -> str | None:
    return None if (root / DESCRIPTION).is_file() else f"no {DESCRIPTION}"


BIDS = register_source(
    LayoutSource(
        name="bids",
        priority=14,  # before the file-name signs: a BIDS root holds files of other layouts
        signs=DESCRIPTION,
        reader=read_bids,
        missing=_bids_missing,
    )
)
