"""Every raw format MNE reads, in the recordings layout: one recording written as FIF (by
``raw.save``), BrainVision and EEGLAB (by ``mne.export.export_raw``, through pybv and eeglabio)
and EDF, read back to the same epochs, with its annotations, the ``events:`` map, the channel
names as the file spells them, and the one-line errors.
"""

from __future__ import annotations

import logging
from pathlib import Path

import mne
import numpy as np
import pytest

from hmsbrain.data.layouts import detect_layout, read_epochs
from hmsbrain.data.spec import read_spec
from tests.test_generic_data import FS, edf_resolution, raises, signal, write_yaml

# As files spell them: read as Fz, Cz and C4; EKG is typed ECG where the format keeps types.
NAMES = ["EEG Fz-REF", "Cz..", "C4", "EKG"]
TYPES = ["eeg", "eeg", "eeg", "ecg"]
SECONDS = 8
NOTES = ((1.0, "T1"), (2.5, "T2"), (4.0, "T1"), (5.0, "T0"))
# The epochs events: keeps (T0 is left out), in onset order.
ONSETS, LABELS = [1.0, 2.5, 4.0], ["left", "right", "left"]
TMIN, TMAX = -0.5, 1.0
# Format -> (file name, the prefix MNE gives its annotations' descriptions: BrainVision
# markers are "<type>/<description>", and exported annotations are comments).
FORMATS = {
    "fif": ("rec.fif", ""),  # not MNE's "raw.fif" ending: its warning about that is no error
    "fif_cropped": ("rec_raw.fif", ""),
    "brainvision": ("rec.vhdr", "Comment/"),
    "eeglab": ("rec.set", ""),
    "edf": ("rec.edf", ""),
}


def make_raw(data: np.ndarray, delay: float = 0.0) -> mne.io.RawArray:
    """``data`` (microvolts) as an MNE recording in volts with :data:`NOTES` as annotations,
    each ``delay`` seconds later."""
    info = mne.create_info(NAMES, FS, TYPES)
    raw = mne.io.RawArray(data * 1e-6, info, verbose="error")
    onsets = [t + delay for t, _ in NOTES]
    raw.set_annotations(mne.Annotations(onsets, 0.0, [d for _, d in NOTES]))
    return raw


def write_recording(root: Path, fmt: str, data: np.ndarray) -> Path:
    """``data`` as one recording in ``fmt`` under ``root``; "fif_cropped" is a FIF file of a
    recording cropped 1 s in, whose first sample is then 100, not 0."""
    name, _ = FORMATS[fmt]
    path = root / name
    root.mkdir(parents=True, exist_ok=True)
    if fmt == "fif_cropped":
        longer = make_raw(np.concatenate([signal(len(NAMES), 1, seed=9), data], axis=1), 1.0)
        longer.crop(tmin=1.0)
        assert longer.first_samp == FS
        longer.save(path, verbose="error")
    elif fmt == "fif":
        make_raw(data).save(path, verbose="error")
    else:
        mne.export.export_raw(path, make_raw(data), verbose="error")
    return path


def tolerance(fmt: str, data: np.ndarray) -> float:
    # EDF stores 16-bit integers; the others store float32 (about 1e-5 uV at these values).
    return edf_resolution(data) if fmt == "edf" else 1e-3


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_gives_the_same_epochs_from_its_annotations(
    tmp_path: Path, fmt: str, caplog: pytest.LogCaptureFixture
) -> None:
    data = signal(len(NAMES), SECONDS)
    path = write_recording(tmp_path, fmt, data)
    prefix = FORMATS[fmt][1]
    events = {f"{prefix}T1": "left", f"{prefix}T2": "right"}
    write_yaml(tmp_path, tmin=TMIN, tmax=TMAX, events=events, channels=["C4", "Fz", "Cz"])
    assert detect_layout(tmp_path, read_spec(tmp_path)) == "recordings"
    with caplog.at_level(logging.INFO, logger="hmsbrain.data.recordings"):
        epochs = read_epochs(tmp_path)
    assert epochs.sfreq == FS and epochs.channels == ("C4", "Fz", "Cz")
    assert epochs.classes == ("left", "right")
    assert list(epochs.ids) == [f"{path.name}@{seconds:g}" for seconds in ONSETS]
    np.testing.assert_array_equal(epochs.targets.argmax(axis=1), [0, 1, 0])
    np.testing.assert_allclose(epochs.starts, np.array(ONSETS) + TMIN)
    assert f"left out 1 {prefix}T0 events" in caplog.text
    for i, onset in enumerate(ONSETS):
        start = round((onset + TMIN) * FS)
        window = data[[2, 0, 1], start : start + round((TMAX - TMIN) * FS) + 1]
        np.testing.assert_allclose(epochs.signals[i], window, rtol=0, atol=tolerance(fmt, data))

    # Every channel the file types EEG, read as 10-20; FIF keeps the ECG type and leaves it out.
    write_yaml(tmp_path, tmin=TMIN, tmax=TMAX, events=events)
    kept = ("Fz", "Cz", "C4") if fmt.startswith("fif") else ("Fz", "Cz", "C4", "EKG")
    assert read_epochs(tmp_path).channels == kept

    write_yaml(tmp_path, tmin=TMIN, tmax=TMAX, events=events, channels=["Fz", "Pz"])
    with raises(path, "missing channels ['Pz']") as error:
        read_epochs(tmp_path)
    assert "\n" not in str(error.value)
    write_yaml(tmp_path, tmin=TMIN, tmax=TMAX, events={f"{prefix}T9": "left"})
    with raises(tmp_path / "dataset.yaml", f"names ['{prefix}T9'], which no chosen recording"):
        read_epochs(tmp_path)


def test_an_events_table_names_recordings_of_any_format(tmp_path: Path) -> None:
    data = signal(len(NAMES), SECONDS)
    write_recording(tmp_path, "eeglab", data)
    write_recording(tmp_path, "brainvision", data)
    (tmp_path / "events.csv").write_text("file,onset,label\nrec.set,1,a\nrec.vhdr,2,b\n")
    write_yaml(tmp_path, tmax=1, channels=["Fz", "Cz"])
    epochs = read_epochs(tmp_path)
    assert list(epochs.ids) == ["rec.set", "rec.vhdr"] and epochs.classes == ("a", "b")
    np.testing.assert_allclose(epochs.signals[1], data[:2, 2 * FS : 3 * FS + 1], atol=1e-3)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("a.fif", "FIF"),
        ("a.vhdr", "BrainVision"),
        ("a.set", "EEGLAB"),
        ("a.gdf", "GDF"),
        ("a.cnt", "CNT"),
        ("a.bdf", "BDF"),
    ],
)
def test_a_corrupt_file_of_each_format_is_one_line_naming_it(
    tmp_path: Path, name: str, kind: str
) -> None:
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    write_yaml(tmp_path, tmax=1)
    with raises(path, f"not a readable {kind} file") as error:
        read_epochs(tmp_path)
    assert "\n" not in str(error.value)


def test_a_truncated_fif_is_an_error_not_a_warning(tmp_path: Path) -> None:
    path = write_recording(tmp_path, "fif", signal(len(NAMES), SECONDS))
    path.write_bytes(path.read_bytes()[:-3000])
    write_yaml(tmp_path, tmax=1)
    # MNE warns about the broken tag before it fails; the warning is the error's reason.
    with raises(path, "not a readable FIF file (Invalid tag"):
        read_epochs(tmp_path)
