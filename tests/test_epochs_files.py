"""The epochs layout: MNE epochs files (``*-epo.fif``) written here by ``mne.Epochs.save``, read
with their own rate, channel names and classes (``event_id``), subjects from a metadata column,
and their bad inputs.
"""

from __future__ import annotations

from pathlib import Path

import mne
import numpy as np
import pandas as pd
import pytest

from hmsbrain.config import Config
from hmsbrain.data.layouts import detect_layout, read_epochs
from hmsbrain.data.registry import detect_source
from hmsbrain.data.sources import open_dataset
from hmsbrain.data.spec import read_spec
from tests.test_generic_data import raises, write_yaml

FS = 128.0
NAMES = ["EEG Fz-REF", "Cz..", "Pz", "EOG"]
EVENT_ID = {"face/left": 1, "face/right": 2, "house": 3}
SAMPLES = 64  # -0.1..0.4 s at 128 Hz


def write_epochs(
    path: Path,
    codes: list[int],
    subjects: list[str] | None = None,
    seed: int = 0,
    names: list[str] = NAMES,
    event_id: dict[str, int] = EVENT_ID,
) -> np.ndarray:
    """Epochs of ``codes`` saved to ``path``, one per second from 1 s; returns their data in
    microvolts, channels in ``names`` order."""
    data = np.random.default_rng(seed).normal(0, 20, (len(codes), len(names), SAMPLES))
    info = mne.create_info(names, FS, ["eog" if n == "EOG" else "eeg" for n in names])
    events = np.column_stack([np.arange(1, len(codes) + 1) * int(FS), [0] * len(codes), codes])
    metadata = None if subjects is None else pd.DataFrame({"subject": subjects})
    epochs = mne.EpochsArray(
        data * 1e-6,
        info,
        events,
        tmin=-0.1,
        event_id={k: v for k, v in event_id.items() if v in codes},
        metadata=metadata,
        verbose="error",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    epochs.save(path, overwrite=True, verbose="error")
    return data


def test_epochs_files_keep_their_rate_names_classes_and_subjects(tmp_path: Path) -> None:
    a = write_epochs(tmp_path / "s01-epo.fif", [1, 3, 2, 3], ["s01"] * 4)
    # Another channel order, another subject per epoch.
    b = write_epochs(tmp_path / "s02_epo.fif", [3, 1], ["s02", "s03"], 1, NAMES[::-1])
    write_yaml(
        tmp_path,
        events={"face/left": "face", "face/right": "face", "house": "house"},
        group_column="subject",
    )
    assert detect_layout(tmp_path, read_spec(tmp_path)) == "epochs"
    assert detect_source(tmp_path).name == "epochs"
    epochs = read_epochs(tmp_path)
    assert epochs.sfreq == FS and epochs.channels == ("Fz", "Cz", "Pz")  # the EOG is left out
    assert epochs.classes == ("face", "house")
    np.testing.assert_array_equal(epochs.targets.argmax(axis=1), [0, 1, 0, 1, 1, 0])
    assert list(epochs.groups) == ["s01"] * 4 + ["s02", "s03"]
    assert list(epochs.ids[:2]) == ["s01-epo.fif@1", "s01-epo.fif@2"]
    assert list(epochs.files) == ["s01-epo.fif"] * 4 + ["s02_epo.fif"] * 2
    expected = np.concatenate([a[:, :3], b[:, [3, 2, 1]]])
    # FIF stores float32: about 1e-5 uV at these values.
    np.testing.assert_allclose(epochs.signals, expected, rtol=0, atol=1e-3)

    # Without events:, each event_id name is a class, in event_id's order.
    write_yaml(tmp_path, channels=["Pz", "Cz"])
    epochs = read_epochs(tmp_path)
    assert epochs.classes == ("face/left", "face/right", "house") and epochs.groups is None
    assert epochs.channels == ("Pz", "Cz")
    np.testing.assert_allclose(epochs.signals[0], a[0, [2, 1]], rtol=0, atol=1e-3)

    cfg = Config()
    cfg.data.data_dir = str(tmp_path)
    cfg.data.cache_dir = str(tmp_path / "cache")
    data = open_dataset(cfg)
    assert data.group_kind == "file" and len(data.fold_units()) == 6


def test_an_epochs_file_of_one_class_is_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "s01-epo.fif"
    write_epochs(path, [3, 3, 3])
    with raises(path, "every epoch is of one class, 'house'; a classifier needs two") as error:
        read_epochs(tmp_path)
    assert "\n" not in str(error.value)
    # Two classes in the file, one left after events: is the same error.
    write_epochs(path, [1, 3, 3])
    write_yaml(tmp_path, events={"house": "house"})
    with raises(path, "every epoch is of one class, 'house'"):
        read_epochs(tmp_path)


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"group_column": "patient"}, "no metadata column 'patient' (group_column: in"),
        ({"events": {"face": "face", "house": "house"}}, "events: names ['face'], which no"),
        ({"channels": ["Fz", "Oz"]}, "missing channels ['Oz']"),
    ],
)
def test_bad_settings_for_epochs_files(tmp_path: Path, settings: dict, problem: str) -> None:
    path = tmp_path / "s01-epo.fif"
    write_epochs(path, [1, 3], ["s01", "s01"])
    write_yaml(tmp_path, **settings)
    where = tmp_path / "dataset.yaml" if "events" in settings else path
    with raises(where, problem) as error:
        read_epochs(tmp_path)
    assert "\n" not in str(error.value)


def test_epochs_files_must_agree_and_be_readable(tmp_path: Path) -> None:
    write_epochs(tmp_path / "a-epo.fif", [1, 3])
    other = tmp_path / "b-epo.fif"
    write_epochs(other, [1, 3], names=["EEG Fz-REF", "Cz..", "Oz"])
    with raises(other, "channels differ from", "found ['Fz', 'Cz', 'Oz']"):
        read_epochs(tmp_path)
    other.write_bytes(b"not a FIF file at all" * 100)
    with raises(other, "not a readable MNE epochs file") as error:
        read_epochs(tmp_path)
    assert "\n" not in str(error.value)
