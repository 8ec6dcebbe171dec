"""The bids layout: a BIDS root written here by ``mne_bids.write_raw_bids``, read with its
task, subject, session and run filters, the events of its ``events.tsv``, the channel types of
its ``channels.tsv`` and its subjects as groups; and its bad inputs.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path

import mne
import mne_bids
import numpy as np
import pandas as pd
import pytest

from hmsbrain.config import Config
from hmsbrain.data.layouts import detect_layout, read_epochs
from hmsbrain.data.registry import detect_source
from hmsbrain.data.sources import open_dataset
from hmsbrain.data.spec import read_spec
from tests.test_generic_data import raises, signal, write_yaml

FS = 100
NAMES, TYPES = ["EEG Fz-REF", "Cz", "EKG"], ["eeg", "eeg", "ecg"]
NOTES = ((1.0, "left"), (2.5, "right"), (4.0, "left"))
# (subject, session, task, run): two subjects of the motor task, one rest run without events.
RECORDINGS = [("01", "1", "mi", "1"), ("01", "1", "mi", "2"), ("02", "1", "mi", "1")]
REST = ("02", "1", "rest", "1")


def recording(
    seed: int, notes: tuple[tuple[float, str], ...]
) -> tuple[mne.io.RawArray, np.ndarray]:
    data = signal(len(NAMES), 6, seed=seed)
    raw = mne.io.RawArray(data * 1e-6, mne.create_info(NAMES, FS, TYPES), verbose="error")
    raw.set_annotations(mne.Annotations([t for t, _ in notes], 0.0, [d for _, d in notes]))
    raw.info["line_freq"] = 50
    return raw, data


@pytest.fixture(scope="module")
def bids_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """A BIDS root of :data:`RECORDINGS` and :data:`REST` (BrainVision, as MNE-BIDS converts
    an array), and each recording's data in microvolts by its file name."""
    root = tmp_path_factory.mktemp("bids") / "root"
    data = {}
    for i, (subject, session, task, run) in enumerate([*RECORDINGS, REST]):
        raw, data_uv = recording(i, () if task == "rest" else NOTES)
        path = mne_bids.BIDSPath(
            subject=subject, session=session, task=task, run=run, datatype="eeg", root=root
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MNE-BIDS announces the conversion it makes
            mne_bids.write_raw_bids(
                raw, path, format="BrainVision", allow_preload=True, verbose="error"
            )
        data[path.copy().update(suffix="eeg", extension=".vhdr").basename] = data_uv
    return root, data


def copy_root(bids_root: tuple[Path, dict], tmp_path: Path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(bids_root[0], root)
    return root


def test_a_bids_root_is_read_with_its_events_channel_types_and_subjects(
    bids_root: tuple[Path, dict], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = copy_root(bids_root, tmp_path)
    write_yaml(root, tmin=-0.5, tmax=1.0)
    assert detect_layout(root, read_spec(root)) == "bids" and detect_source(root).name == "bids"
    with caplog.at_level(logging.INFO):
        epochs = read_epochs(root)
    # The rest run has no events.tsv: no epochs, a warning naming it.
    assert "sub-02_ses-1_task-rest_run-1_eeg.vhdr: no events.tsv, so no epochs" in caplog.text
    assert epochs.classes == ("left", "right") and epochs.sfreq == FS
    assert epochs.channels == ("Fz", "Cz")  # channels.tsv types EKG as ECG: left out
    assert list(epochs.groups) == ["01"] * 6 + ["02"] * 3
    first = "sub-01/ses-1/eeg/sub-01_ses-1_task-mi_run-1_eeg.vhdr"
    assert list(epochs.ids[:3]) == [f"{first}@1", f"{first}@2.5", f"{first}@4"]
    np.testing.assert_array_equal(epochs.targets.argmax(axis=1), [0, 1, 0] * 3)
    for signals, file, start in zip(epochs.signals, epochs.files, epochs.starts, strict=True):
        data = bids_root[1][Path(file).name][:2]
        expected = data[:, round(start * FS) : round(start * FS) + round(1.5 * FS) + 1]
        # BrainVision as MNE-BIDS writes it: 0.1 uV steps.
        np.testing.assert_allclose(signals, expected, rtol=0, atol=0.1)

    # Both sidecars are what counts: a new trial_type in events.tsv, a channel typed MISC.
    events_tsv = root / "sub-02/ses-1/eeg/sub-02_ses-1_task-mi_run-1_events.tsv"
    events = pd.read_csv(events_tsv, sep="\t")
    events["trial_type"] = events["trial_type"].replace("right", "rest")
    events.to_csv(events_tsv, sep="\t", index=False)
    channels_tsv = root / "sub-01/ses-1/eeg/sub-01_ses-1_task-mi_run-2_channels.tsv"
    channels = pd.read_csv(channels_tsv, sep="\t")
    channels.loc[channels["name"] == "Cz", "type"] = "MISC"
    channels.to_csv(channels_tsv, sep="\t", index=False)
    write_yaml(root, tmin=-0.5, tmax=1.0, channels=["Fz"], bids={"subject": "02"})
    epochs = read_epochs(root)
    assert epochs.classes == ("left", "rest") and set(epochs.groups) == {"02"}
    write_yaml(root, tmin=-0.5, tmax=1.0)
    with raises(channels_tsv.with_name("sub-01_ses-1_task-mi_run-2_eeg.vhdr"), "channels differ"):
        read_epochs(root)


def test_filters_choose_recordings_by_task_subject_session_and_run(
    bids_root: tuple[Path, dict], tmp_path: Path
) -> None:
    root = copy_root(bids_root, tmp_path)
    chosen = [
        (None, 9),
        ({"task": "mi", "run": "2"}, 3),
        ({"subject": ["01", "02"], "session": "1", "run": 1}, 6),
    ]
    for filters, count in chosen:
        write_yaml(root, tmin=0, tmax=1, bids=filters)
        assert len(read_epochs(root)) == count
    write_yaml(root, tmin=0, tmax=1, bids={"task": "faces", "subject": 1})
    with raises(root, "no EEG recording of bids: subject ['1'], task ['faces']") as error:
        read_epochs(root)
    assert str(error.value).endswith("the root has subject ['01', '02'], task ['mi', 'rest']")
    write_yaml(root, tmin=0, tmax=1, bids={"subject": "03"})
    with raises(root, "no EEG recording of bids: subject ['03']"):
        read_epochs(root)

    cfg = Config()
    cfg.data.data_dir = str(root)
    cfg.data.cache_dir = str(tmp_path / "cache")
    write_yaml(root, tmin=0, tmax=1, bids={"task": "mi"})
    data = open_dataset(cfg)
    assert data.group_kind == "subject" and len(data.fold_units()) == 9


def test_a_bids_root_without_events_is_one_line_naming_it(
    bids_root: tuple[Path, dict], tmp_path: Path
) -> None:
    root = copy_root(bids_root, tmp_path)
    for events in root.glob("sub-*/ses-*/eeg/*_events.*"):
        events.unlink()
    write_yaml(root, tmin=0, tmax=1)
    with raises(root, "no events: none of the 4 EEG recordings chosen has an events.tsv") as error:
        read_epochs(root)
    assert "\n" not in str(error.value)
    write_yaml(root)
    with raises(root / "dataset.yaml", "tmax is required for the bids layout"):
        read_epochs(root)


def test_a_folder_without_dataset_description_is_not_bids(tmp_path: Path) -> None:
    write_yaml(tmp_path, layout="bids", tmax=1)
    with raises(tmp_path, "not in the bids layout", "no dataset_description.json"):
        read_epochs(tmp_path)
