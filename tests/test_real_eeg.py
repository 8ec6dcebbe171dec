"""Real EEG on the first try: any sampling rate, events chosen and mapped by ``dataset.yaml``,
and channel names as real files spell them; then the PhysioNet EEG Motor Movement/Imagery
recordings (EEGMMIDB, subject 1) opened from a six-line ``dataset.yaml``.

The synthetic files are written into ``tmp_path`` (EDF through edfio, as in
``test_generic_data``); the EEGMMIDB tests link the real files from ``../shared/data`` and are
skipped where that folder is absent.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import edfio
import numpy as np
import pandas as pd
import pytest

from hmsbrain.config import Config, PreprocessConfig
from hmsbrain.data import files
from hmsbrain.data.dataset import EpochDataset
from hmsbrain.data.layouts import read_epochs
from hmsbrain.data.sources import open_dataset
from hmsbrain.data.spec import read_spec
from hmsbrain.dsp.filters import MAX_RATE_ERROR, rate_ratio, resample
from hmsbrain.dsp.montage import CLINICAL_1020, canonical, choose_montage, mirror_name
from hmsbrain.training.folds import make_folds
from tests.conftest import SHARED_DATA
from tests.test_generic_data import FS, edf_resolution, raises, signal, write_edf, write_yaml

EEGMMIDB = SHARED_DATA / "eegmmidb-S001"
SKIP_EEGMMIDB = (
    "needs ../shared/data/eegmmidb-S001 (PhysioNet EEGMMIDB subject 1; present in CI, absent "
    "in a user's clone)"
)


# --- Any sampling rate --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fs_in", "factors", "exact"),
    [(173.61, (87, 118), False), (1000 / 3, (48, 125), True), (160.0, (4, 5), True)],
)
def test_any_rate_resamples_to_128_hz_keeping_a_sine(
    fs_in: float, factors: tuple[int, int], exact: bool, caplog: pytest.LogCaptureFixture
) -> None:
    rate_ratio.cache_clear()  # the approximation is logged once per pair of rates
    with caplog.at_level(logging.INFO, logger="hmsbrain.dsp.filters"):
        up, down = rate_ratio(fs_in, 128.0)
        rate_ratio(fs_in, 128.0)
    assert (up, down) == factors
    error = abs(fs_in * up / down - 128.0) / 128.0
    assert error < (1e-12 if exact else MAX_RATE_ERROR)
    lines = [r.getMessage() for r in caplog.records]
    if exact:
        assert lines == []
    else:
        assert len(lines) == 1
        assert all(f in lines[0] for f in ("173.61 Hz", "128 Hz", "up 87", "down 118", "4.6e-06"))

    n = round(10 * fs_in)
    t = np.arange(n) / fs_in
    out = resample(np.sin(2 * np.pi * 10 * t).astype(np.float32)[None], fs_in, 128.0)
    assert out.shape == (1, math.ceil(n * up / down))
    # The 10 Hz sine stays 10 Hz at 128 Hz: sample k is sin(2 pi 10 k / 128), away from the
    # filter's edge effects at both ends.
    expected = np.sin(2 * np.pi * 10 * np.arange(out.shape[1]) / 128.0)
    np.testing.assert_allclose(out[0, 64:-64], expected[64:-64], atol=0.02)


def test_rate_ratio_approximates_far_rates_within_the_bound() -> None:
    # 100000.7 Hz to 1 Hz needs factors above 1000 for an error below 1e-4.
    up, down = rate_ratio(100000.7, 1.0)
    assert down > 1000 and abs(100000.7 * up / down - 1) < MAX_RATE_ERROR
    with pytest.raises(ValueError, match="input rate 0 Hz is not a positive number"):
        rate_ratio(0.0, 128.0)


def test_a_173_hz_dataset_reaches_the_model_at_128_hz(tmp_path: Path) -> None:
    fs = 173.61
    np.save(tmp_path / "X.npy", np.random.default_rng(0).normal(0, 20e-6, (4, 2, round(2 * fs))))
    np.save(tmp_path / "y.npy", np.array([0, 1, 0, 1]))
    write_yaml(tmp_path, sample_rate=fs, units="V", channels=["C3", "C4"])
    epochs = read_epochs(tmp_path)
    cfg = PreprocessConfig(raw_downsample=1)
    batch = EpochDataset(epochs, tmp_path, "train", cfg).inputs([0, 1], ["raw"])
    assert batch["raw"].shape == (2, math.ceil(round(2 * fs) * 87 / 118), 2)


@pytest.mark.parametrize("rate", [0, -160])
def test_a_bad_rate_in_dataset_yaml_is_one_line_naming_it(tmp_path: Path, rate: int) -> None:
    np.save(tmp_path / "X.npy", np.zeros((2, 1, 100)))
    np.save(tmp_path / "y.npy", np.array([0, 1]))
    write_yaml(tmp_path, sample_rate=rate)
    with raises(tmp_path / "dataset.yaml", "sample_rate must be > 0") as error:
        read_epochs(tmp_path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("duration", [b"0       ", b"-1      "])
def test_an_edf_with_a_bad_record_duration_is_one_line_naming_it(
    tmp_path: Path, duration: bytes
) -> None:
    path = write_edf(tmp_path / "rec.edf", signal(1, 5), ["Cz"], annotations=((1.0, "x"),))
    header = bytearray(path.read_bytes())
    header[244:252] = duration  # the EDF header's "duration of a data record" field
    path.write_bytes(bytes(header))
    write_yaml(tmp_path, tmax=1)
    with raises(path, "not a readable EDF file") as error:
        read_epochs(tmp_path)
    assert "\n" not in str(error.value)


# --- Channel names as real files spell them -----------------------------------------------------


@pytest.mark.parametrize(
    ("spelled", "name"),
    [
        ("Fc5.", "FC5"),
        ("C3..", "C3"),
        ("Cz..", "Cz"),
        ("Fpz.", "Fpz"),
        ("T10.", "T10"),
        ("EEG Fp1", "Fp1"),
        ("EEG FP1-REF", "Fp1"),
        ("Fp1-LE", "Fp1"),
        ("FP1-A1", "Fp1"),
        ("fp2-M2", "Fp2"),
        ("eeg fp1", "Fp1"),
        ("EEG T3-Ref", "T7"),
        ("Cz-AVG", "Cz"),
        ("EKG", "EKG"),
        ("ch1", "ch1"),
        ("Fp1-F7", "Fp1-F7"),
    ],
)
def test_channel_names_are_read_as_1020_whatever_their_spelling(spelled: str, name: str) -> None:
    assert canonical(spelled) == name


def test_mirror_and_double_banana_from_decorated_names() -> None:
    assert mirror_name("Fc5.") == "FC6" and mirror_name("EEG C3-REF") == "C4"
    assert mirror_name("ch1") is None  # not an electrode: no hemisphere
    decorated = tuple(f"EEG {n.upper()}-REF" for n in CLINICAL_1020)
    montage = choose_montage("auto", decorated)
    assert montage.kind == "double_banana" and montage.mirror is not None
    assert decorated[montage.anodes[0]] == "EEG FP1-REF"  # Fp1-F7
    dotted = tuple(f"{n}{'.' * (4 - len(n))}" for n in CLINICAL_1020)  # EEGMMIDB's padding
    assert choose_montage("auto", dotted).kind == "double_banana"


def test_channels_are_found_by_their_1020_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files._log_renames.cache_clear()
    data = signal(5, 6)
    names = ["Fc5.", "C3..", "Cz..", "C4..", "EKG"]
    write_edf(tmp_path / "rec.edf", data, names, annotations=((1.0, "x"), (3.0, "y")))
    write_yaml(tmp_path, tmax=1, channels=["C4", "c3", "Cz"])  # any spelling asks for them too
    with caplog.at_level(logging.INFO, logger="hmsbrain.data.files"):
        epochs = read_epochs(tmp_path)
    assert epochs.channels == ("C4", "C3", "Cz")
    window = data[[3, 1, 2], FS : 2 * FS + 1]
    np.testing.assert_allclose(epochs.signals[0], window, atol=edf_resolution(data))
    assert "channels read as 10-20: Fc5.->FC5, C3..->C3, Cz..->Cz, C4..->C4" in caplog.text

    write_yaml(tmp_path, tmax=1, channels=["C3", "Pz"])
    with raises(tmp_path / "rec.edf", "missing channels ['Pz']"):
        read_epochs(tmp_path)


def test_channel_map_renames_before_matching(tmp_path: Path) -> None:
    data = signal(3, 6)
    # Two references of one electrode: which one is Fp1 only channel_map can say.
    names = ["EEG Fp1-REF", "EEG Fp1-LE", "EEG C3-REF"]
    write_edf(tmp_path / "rec.edf", data, names, annotations=((1.0, "x"),))
    write_yaml(tmp_path, tmax=1, channels=["Fp1", "C3"], channel_map={"EEG Fp1-LE": "Fp1"})
    epochs = read_epochs(tmp_path)
    assert epochs.channels == ("Fp1", "C3")
    window = data[[1, 2], FS : 2 * FS + 1]
    np.testing.assert_allclose(epochs.signals[0], window, atol=edf_resolution(data))

    write_yaml(tmp_path, tmax=1, channel_map={"EEG Fp1-LE": "EEG C3-REF"})
    with raises(tmp_path / "rec.edf", "several channels are read as ['EEG C3-REF']"):
        read_epochs(tmp_path)


def test_text_headers_are_read_as_1020(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    pd.DataFrame({"EEG C3-REF": [1.0, 2.0], "eeg c4": [3.0, 4.0]}).to_csv(path, index=False)
    data, _, names = files.read_signal_file(path, read_spec_with(tmp_path, channels=["C4", "C3"]))
    assert names == ("C4", "C3")
    np.testing.assert_array_equal(data, [[3, 4], [1, 2]])


def read_spec_with(root: Path, **settings: object):
    write_yaml(root, sample_rate=FS, **settings)
    return read_spec(root)


# --- Events chosen and mapped, spans cut into windows, recordings chosen by globs ---------------


def test_events_map_descriptions_to_classes_and_leave_out_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notes = ((1.0, "T0"), (2.0, "T2"), (4.0, "T1"), (6.0, "T0"), (7.0, "T1"))
    write_edf(tmp_path / "run.edf", signal(1, 10), ["Cz"], annotations=notes)
    # An unusual map, so that its order differs from the sorted classes.
    write_yaml(tmp_path, tmax=1, events={"T1": "right", "T2": "left"})
    with caplog.at_level(logging.INFO, logger="hmsbrain.data.recordings"):
        epochs = read_epochs(tmp_path)
    assert epochs.classes == ("right", "left")  # the order events: gives
    assert list(epochs.ids) == ["run.edf@2", "run.edf@4", "run.edf@7"]
    np.testing.assert_array_equal(epochs.targets, [[0, 1], [1, 0], [1, 0]])
    assert "left out 2 T0 events (not in events:" in caplog.text


def test_an_events_name_that_no_file_has_is_an_error_naming_what_they_have(
    tmp_path: Path,
) -> None:
    notes = ((1.0, "T0"), (2.0, "T2"), (4.0, "T1"))
    write_edf(tmp_path / "run.edf", signal(1, 8), ["Cz"], annotations=notes)
    # T9, a typo for T1: without the check, "left" had no epoch and "right" alone was trained.
    write_yaml(tmp_path, tmax=1, events={"T9": "left", "T2": "right"})
    with raises(tmp_path / "dataset.yaml", "events: names ['T9'], which no chosen recording has"):
        read_epochs(tmp_path)


def test_without_events_every_description_is_a_class(tmp_path: Path) -> None:
    notes = ((1.0, "T0"), (3.0, "bad_blink"), (5.0, "T1"))
    write_edf(tmp_path / "run.edf", signal(1, 8), ["Cz"], annotations=notes)
    write_yaml(tmp_path, tmax=1)
    assert read_epochs(tmp_path).classes == ("T0", "T1", "bad_blink")


def test_events_map_applies_to_an_events_table(tmp_path: Path) -> None:
    write_edf(tmp_path / "a.edf", signal(1, 10), ["Cz"])
    (tmp_path / "events.csv").write_text("file,onset,label\na.edf,1,1\na.edf,3,2\na.edf,5,9\n")
    write_yaml(tmp_path, tmax=1, events={1: "rest", 2: "task"})
    epochs = read_epochs(tmp_path)
    assert epochs.classes == ("rest", "task") and list(epochs.ids) == ["a.edf@1", "a.edf@3"]


def test_epochs_cut_annotated_spans_into_windows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = signal(2, 30)
    spans = [(0.0, 10.0, "W"), (10.0, 5.0, "N2"), (15.0, 1.5, "N1"), (16.5, 14.0, "N3")]
    signals = [
        edfio.EdfSignal(row, sampling_frequency=FS, label=name, physical_dimension="uV")
        for row, name in zip(data, ["Fpz", "Cz"], strict=True)
    ]
    notes = [edfio.EdfAnnotation(onset, length, stage) for onset, length, stage in spans]
    edfio.Edf(signals, annotations=notes).write(tmp_path / "night.edf")
    write_yaml(
        tmp_path, epochs={"from": "annotations", "length": 4}, classes=["W", "N1", "N2", "N3"]
    )
    with caplog.at_level(logging.INFO, logger="hmsbrain.data.recordings"):
        epochs = read_epochs(tmp_path)
    # W: 0, 4 (8..12 crosses into N2); N2: 10; N1: none (1.5 s); N3, cut at the recording's end
    # (30 s): 16.5, 20.5, 24.5.
    np.testing.assert_allclose(epochs.starts, [0, 4, 10, 16.5, 20.5, 24.5])
    assert epochs.signals.shape == (6, 2, 4 * FS)
    np.testing.assert_array_equal(epochs.targets.argmax(axis=1), [0, 0, 2, 3, 3, 3])
    start = round(16.5 * FS)
    np.testing.assert_allclose(
        epochs.signals[3], data[:, start : start + 4 * FS], atol=edf_resolution(data)
    )
    assert f"{tmp_path}: 1 annotated spans shorter than one 4 s window gave no" in caplog.text


def test_files_choose_recordings_by_globs(tmp_path: Path) -> None:
    for run in (1, 4, 8):
        write_edf(tmp_path / f"S001R{run:02d}.edf", signal(1, 5), ["Cz"], annotations=((1, "x"),))
    write_yaml(tmp_path, tmax=1, files="S*R0[48].edf")
    assert sorted(read_epochs(tmp_path).files) == ["S001R04.edf", "S001R08.edf"]
    write_yaml(tmp_path, tmax=1, files=["S*R01.edf", "S*R08.edf"])
    assert sorted(read_epochs(tmp_path).files) == ["S001R01.edf", "S001R08.edf"]
    write_yaml(tmp_path, tmax=1, files=["S*R01.edf", "S*R09.edf"])
    with raises(tmp_path, "matches files: 'S*R09.edf'"):
        read_epochs(tmp_path)


def test_files_choose_the_recordings_of_an_events_table(tmp_path: Path) -> None:
    for name in ("a1.edf", "b1.edf"):
        write_edf(tmp_path / name, signal(1, 5), ["Cz"])
    (tmp_path / "events.csv").write_text("file,onset,label\na1.edf,1,x\nb1.edf,2,y\n")
    write_yaml(tmp_path, tmax=1, files="a*.edf")
    epochs = read_epochs(tmp_path)
    assert list(epochs.files) == ["a1.edf"] and epochs.classes == ("x",)


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"events": {"T1": ["a"]}}, "events must map names to names"),
        ({"events": 3}, "events must be a file name or a map"),
        ({"epochs": {"from": "table", "length": 30}}, "epochs must be {from: annotations"),
        ({"epochs": {"from": "annotations", "length": 0}}, "epochs must be"),
        ({"epochs": {"from": "annotations", "length": 30}, "tmax": 4}, "do not apply"),
        ({"files": 3}, "files must be a glob or a list of globs"),
        ({"files": "../other/*.edf"}, "relative to the data folder"),
        ({"channel_map": ["Fp1"]}, "channel_map must be a non-empty mapping"),
    ],
)
def test_spec_bad_new_keys(tmp_path: Path, settings: dict, problem: str) -> None:
    write_yaml(tmp_path, **settings)
    with raises(tmp_path / "dataset.yaml", problem):
        read_spec(tmp_path)


# --- EEGMMIDB, subject 1 ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def eegmmidb() -> Path:
    if not (EEGMMIDB / "S001R04.edf").is_file():
        pytest.skip(SKIP_EEGMMIDB)
    return EEGMMIDB


# Imagined movements: runs 4, 8, 12 are the left (T1) or right (T2) fist, runs 6, 10, 14 both
# fists (T1) or both feet (T2); T0 is rest between the trials (15 of each kind per run).
TASKS = {
    "left_right": ("[S*R04.edf, S*R08.edf, S*R12.edf]", "{T1: left, T2: right}", ("left", "right")),
    "fists_feet": ("[S*R06.edf, S*R10.edf, S*R14.edf]", "{T1: fists, T2: feet}", ("fists", "feet")),
}


@pytest.mark.parametrize("task", TASKS)
def test_eegmmidb_opens_from_six_lines_of_dataset_yaml(
    eegmmidb: Path, tmp_path: Path, task: str
) -> None:
    globs, events, classes = TASKS[task]
    root = tmp_path / task
    root.mkdir()
    for edf in sorted(eegmmidb.glob("*.edf")):  # every run: files: chooses the task's
        (root / edf.name).symlink_to(edf)
    yaml_text = f"layout: recordings\nfiles: {globs}\nevents: {events}\ntmin: 0\ntmax: 4\n"
    (root / "dataset.yaml").write_text(yaml_text)
    assert len(yaml_text.splitlines()) <= 6

    cfg = Config()
    cfg.data.data_dir = str(root)
    cfg.data.cache_dir = str(tmp_path / "cache")
    data = open_dataset(cfg)
    assert len(data.fold_units()) == 45 and data.classes == classes
    # The default recipe's 2 s crops: the same number of every 4 s epoch, each a row.
    crops = data.rows.groupby("epoch").size()
    assert crops.nunique() == 1 and crops.iloc[0] > 1 and len(data) == 45 * crops.iloc[0]
    assert data.epochs.channels[:3] == ("FC5", "FC3", "FC1") and len(data.epochs.channels) == 64
    assert data.epochs.signals.shape[1:] == (64, 4 * 160 + 1)
    # T0 rests left out, every epoch a class.
    assert data.unit_targets(data.rows).to_numpy().sum() == 45
    assert data.group_kind == "file" and data.rows["group"].nunique() == 3
    # Three folds grouped by file: leave one run out.
    folds = make_folds(data.fold_units(), 3, seed=0, kind=data.group_kind)
    by_epoch = data.rows.drop_duplicates("epoch").set_index("epoch")
    runs = by_epoch.loc[folds["id"], "file"].to_numpy()
    assert pd.Series(runs).groupby(folds["fold"].to_numpy()).nunique().tolist() == [1, 1, 1]
    assert data.montage.mirror is not None  # 64 channels read as 10-10 names: a mirror
