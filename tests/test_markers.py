"""The markers layout: continuous CSV/TSV recordings with a marker column, as a Muse headset
writes them through eeg-notebooks, cut into epochs around the markers; its bad inputs; and the
real eeg-notebooks N170 recordings (``../shared/data/eegnb-n170``, skipped where absent) read
from a folder of links and a dataset.yaml of nine lines.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hmsbrain.config import Config
from hmsbrain.data.layouts import detect_layout, read_epochs
from hmsbrain.data.markers import clock_rate
from hmsbrain.data.sources import open_dataset
from hmsbrain.data.spec import read_spec
from tests.conftest import SHARED_DATA
from tests.test_generic_data import raises, write_yaml

FS = 256
COLUMNS = ["TP9", "AF7", "AF8", "TP10", "Right AUX"]
# What a Muse folder's dataset.yaml says, less what a test changes.
SETTINGS = {
    "markers": "Marker0",
    "timestamps": "timestamps",
    "channels": ["TP9", "AF7", "AF8", "TP10"],
    "events": {1: "house", 2: "face"},
    "tmin": -0.1,
    "tmax": 0.5,
    "group_pattern": r"(subject\d+)/",
    "files": "subject*/session*/*.csv",
}


def muse_table(seconds: float, markers: dict[int, int], seed: int = 0) -> pd.DataFrame:
    """A Muse recording as eeg-notebooks writes it: microvolts to 3 decimals, ``markers`` (row
    -> value) in Marker0, and timestamps from a host clock 0.008% fast, stamped as packets
    arrive (0..30 ms late, so some steps go back), to the millisecond."""
    rng = np.random.default_rng(seed)
    n = round(seconds * FS)
    table = pd.DataFrame(np.round(rng.normal(0, 20, (n, len(COLUMNS))), 3), columns=COLUMNS)
    late = rng.uniform(0, 0.03, n)
    table.insert(0, "timestamps", np.round(17667.5 + np.arange(n) / (FS * 1.00008) + late, 3))
    table["Marker0"] = 0
    for row, value in markers.items():
        table.loc[row, "Marker0"] = value
    return table


def write_table(path: Path, table: pd.DataFrame, sep: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, sep=sep, index=False)
    return path


def window(table: pd.DataFrame, row: int, tmin: float = -0.1, tmax: float = 0.5) -> np.ndarray:
    """The epoch the reader cuts around ``row``: both ends included, as MNE cuts them."""
    chosen = table[SETTINGS["channels"]].to_numpy().T
    return chosen[:, row + round(tmin * FS) : row + round(tmax * FS) + 1]


def test_csv_recordings_are_cut_around_their_markers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a = muse_table(6, {100: 1, 600: 2, 1200: 1})
    # A trigger held three rows is one event; the last marker's epoch runs past the end.
    b = muse_table(4, {300: 2, 301: 2, 302: 2, 700: 1, 1000: 2}, seed=1)
    c = muse_table(4, {200: 2, 512: 1}, seed=2)
    write_table(tmp_path / "subject1" / "session1" / "data_1.csv", a)
    write_table(tmp_path / "subject1" / "session2" / "recording_2.csv.csv", b)
    write_table(tmp_path / "subject2" / "session1" / "data_3.csv", c)
    write_yaml(tmp_path, **SETTINGS)
    assert detect_layout(tmp_path, read_spec(tmp_path)) == "markers"
    with caplog.at_level(logging.INFO):
        epochs = read_epochs(tmp_path)
    # 256.02 Hz by the host clock is the Muse's 256 Hz.
    assert epochs.sfreq == FS and epochs.classes == ("house", "face")
    assert epochs.channels == ("TP9", "AF7", "AF8", "TP10")  # Right AUX is not named
    files = ["subject1/session1/data_1.csv"] * 3 + ["subject1/session2/recording_2.csv.csv"] * 2
    files += ["subject2/session1/data_3.csv"] * 2
    assert list(epochs.files) == files
    assert list(epochs.groups) == ["subject1"] * 5 + ["subject2"] * 2
    assert list(epochs.ids[:3]) == [f"{files[0]}@{row / FS:g}" for row in (100, 600, 1200)]
    np.testing.assert_array_equal(epochs.targets.argmax(axis=1), [0, 1, 0, 1, 0, 1, 0])
    expected = [(a, 100), (a, 600), (a, 1200), (b, 300), (b, 700), (c, 200), (c, 512)]
    assert epochs.signals.shape == (7, 4, round(0.5 * FS) - round(-0.1 * FS) + 1)
    for signals, (table, row) in zip(epochs.signals, expected, strict=True):
        np.testing.assert_allclose(signals, window(table, row), rtol=0, atol=1e-4)
    assert "recording_2.csv.csv: left out 1 events whose epochs" in caplog.text

    # A stated rate without timestamps reads the same epochs, from a TSV file too.
    (tmp_path / "subject2" / "session1" / "data_3.csv").unlink()
    write_table(tmp_path / "subject2" / "session1" / "data_3.tsv", c, sep="\t")
    files = ["subject1/*/*.csv", "subject2/*/*.tsv"]
    write_yaml(tmp_path, **{**SETTINGS, "timestamps": None, "files": files}, sample_rate=FS)
    again = read_epochs(tmp_path)
    np.testing.assert_array_equal(again.signals, epochs.signals)
    assert list(again.groups) == list(epochs.groups)


def test_markers_without_events_are_classes_named_by_value(tmp_path: Path) -> None:
    write_table(tmp_path / "run.csv", muse_table(3, {100: 1, 300: 2, 500: 1}))
    settings = {k: v for k, v in SETTINGS.items() if k not in ("events", "files", "group_pattern")}
    write_yaml(tmp_path, **settings)
    epochs = read_epochs(tmp_path)
    assert epochs.classes == ("1", "2") and epochs.groups is None


def write_folder(root: Path, table: pd.DataFrame, **changes: object) -> Path:
    """One recording in a Muse folder; ``changes`` to :data:`SETTINGS` (None removes a key)."""
    path = write_table(root / "subject1" / "session1" / "data.csv", table)
    settings = {k: v for k, v in {**SETTINGS, **changes}.items() if v is not None}
    write_yaml(root, **settings)
    return path


def shifted(table: pd.DataFrame, from_row: int, seconds: float) -> pd.DataFrame:
    """``table`` with its timestamps moved by ``seconds`` from ``from_row`` on."""
    table = table.copy()
    table.loc[from_row:, "timestamps"] += seconds
    return table


def wobbling(table: pd.DataFrame, seconds: float) -> pd.DataFrame:
    """``table`` with a host clock that runs slow then fast, ``seconds`` apart at most."""
    table = table.copy()
    phase = np.linspace(0, 2 * np.pi, len(table))
    table["timestamps"] += seconds * np.sin(phase)
    return table


MARKS = {100: 1, 600: 2}


@pytest.mark.parametrize(
    ("table", "changes", "problem"),
    [
        (muse_table(3, MARKS).drop(columns="Marker0"), {}, "no column 'Marker0' (markers: in"),
        (shifted(muse_table(3, MARKS), 400, -2.0), {}, "line 402: timestamps go backwards"),
        (shifted(muse_table(3, MARKS), 400, 0.5), {}, "line 402: a gap of 0.5"),
        (wobbling(muse_table(3, MARKS), 0.3), {}, "timestamps jitter by 0."),
        (muse_table(3, {100: 1, 600: 3}), {}, "line 602: marker '3' is not in events: of"),
        (muse_table(3, MARKS), {"channels": ["TP9", "Fz"]}, "missing channels ['Fz']"),
        (muse_table(3, MARKS), {"sample_rate": 250}, "timestamps give 256.0"),
        (muse_table(3, MARKS), {"timestamps": None}, "needs sample_rate, or timestamps"),
        (muse_table(3, MARKS), {"tmax": None}, "tmax is required for the markers layout"),
    ],
)
def test_bad_csv_recordings_are_one_line_naming_the_file(
    tmp_path: Path, table: pd.DataFrame, changes: dict, problem: str
) -> None:
    path = write_folder(tmp_path, table, **changes)
    if "sample_rate, or" in problem or "tmax is" in problem:
        path = tmp_path / "dataset.yaml"
    with raises(path, problem) as error:
        read_epochs(tmp_path)
    assert "\n" not in str(error.value)


def test_clock_rate_of_regular_and_odd_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    assert clock_rate(path, np.arange(1000) / 173.61) == 173.61
    assert clock_rate(path, np.arange(1000) / 256.02) == 256.0
    assert clock_rate(path, np.arange(1000) / 256.02, stated=256.0) == 256.0
    with raises(path, "must be seconds (milliseconds?)"):
        clock_rate(path, np.arange(1000) * 1000 / 256)
    with raises(path, "go backwards or stand still"):
        clock_rate(path, np.arange(1000)[::-1] / 256)


# --- The real eeg-notebooks N170 recordings -----------------------------------------------------

N170 = SHARED_DATA / "eegnb-n170"
SKIP_N170 = (
    "needs ../shared/data/eegnb-n170 (eeg-notebooks N170 Muse recordings; present in CI, absent "
    "in a user's clone)"
)
# The whole dataset.yaml of a folder of links to the N170 files, as the README and the N170
# tutorial show it (tests/test_docs.py holds them together).
N170_YAML = """\
markers: Marker0
events: {1: house, 2: face}
timestamps: timestamps
channels: [TP9, AF7, AF8, TP10]
files: subject*/session*/*.csv
group_pattern: '(subject\\d+)/'
tmin: -0.1
tmax: 0.8
baseline: [null, 0]
"""
# Epochs per subject and class, counted independently from the files' Marker0 columns: every
# marker but those whose -0.1..0.8 s epoch runs past the start or end of its file.
N170_COUNTS = {
    ("subject1", "house"): 591,
    ("subject1", "face"): 583,
    ("subject10", "house"): 16,
    ("subject10", "face"): 12,
    ("subject11", "house"): 89,
    ("subject11", "face"): 102,
    ("subject2", "house"): 199,
    ("subject2", "face"): 195,
    ("subject3", "house"): 515,
    ("subject3", "face"): 474,
}


def link_n170(root: Path) -> Path:
    """A folder of links to the N170 files, in their subject/session tree, and N170_YAML."""
    for csv in sorted(N170.glob("*/*/*.csv")):
        link = root / csv.relative_to(N170)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(csv)
    (root / "dataset.yaml").write_text(N170_YAML)
    return root


def test_n170_opens_from_a_folder_of_links_and_nine_lines(tmp_path: Path) -> None:
    if not N170.is_dir():
        pytest.skip(SKIP_N170)
    root = link_n170(tmp_path / "N170")
    assert len(N170_YAML.splitlines()) <= 10
    cfg = Config()
    cfg.data.data_dir = str(root)
    cfg.data.cache_dir = str(tmp_path / "cache")
    data = open_dataset(cfg)
    assert data.classes == ("house", "face") and data.group_kind == "subject"
    assert data.epochs.sfreq == FS and data.epochs.channels == ("TP9", "AF7", "AF8", "TP10")
    assert data.epochs.signals.shape[1:] == (4, round(0.8 * FS) - round(-0.1 * FS) + 1)
    epochs = data.rows.drop_duplicates("epoch")
    labels = np.array(data.classes)[epochs[list(data.classes)].to_numpy().argmax(axis=1)]
    counts = pd.Series(1, index=pd.MultiIndex.from_arrays([epochs["group"], labels])).groupby(
        level=[0, 1]
    )
    assert counts.sum().to_dict() == N170_COUNTS
