"""The embedded generic demos: deterministic, in the layouts they claim, at EEG scale, learnable.

Each demo is generated once per session (``ensure_demo``) and read here with numpy/scipy/edfio
only, so these tests pin the file formats independently of the project's readers. The learning
checks hold the demos to their purpose: under subject-grouped 5-fold CV a band-power model beats
chance, and a linear model of the downsampled time course (a lower bound of what a CNN on the raw
signal learns) beats the band-power model clearly.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from fractions import Fraction
from pathlib import Path

import edfio
import numpy as np
import pandas as pd
import pytest
import scipy.signal
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GroupKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from hmsbrain.data.demos import DEMOS, MARKER, emotiv, ensure_demo, mindwave, trials64

SEED = 0
BANDS_HZ = (1, 4, 8, 13, 20, 30, 45)
TIME_DOMAIN_HZ = 32
# The margin by which the time-domain model must beat band power, in balanced accuracy.
MARGIN = 0.08


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("generic_demos")
    return {name: ensure_demo(name, base / name, SEED) for name in DEMOS}


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MARKER
    }


def _meta(root: Path) -> dict:
    return yaml.safe_load((root / "dataset.yaml").read_text())


# --- Readers: the file formats, spelled out ------------------------------------------------------


def _read_emotiv(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Epochs from tmin to tmax (inclusive) around each marker of ``events.csv``."""
    meta, events = _meta(root), pd.read_csv(root / "events.csv")
    epochs, labels, groups = [], [], []
    for file, rows in events.groupby("file", sort=False):
        edf = edfio.read_edf(root / file)
        data = np.stack([s.data for s in edf.signals])
        fs = edf.signals[0].sampling_frequency
        first, last = round(meta["tmin"] * fs), round(meta["tmax"] * fs)
        for onset, label, subject in rows[["onset", "label", "subject"]].itertuples(index=False):
            at = round(onset * fs)
            epochs.append(data[:, at + first : at + last + 1])
            labels.append(meta["classes"].index(label))
            groups.append(subject)
    return np.stack(epochs), np.array(labels), np.array(groups), fs


def _read_trials64(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    X, y, groups = (np.load(root / f"{k}.npy") for k in ("X", "y", "groups"))
    return X, y, groups, float(_meta(root)["sample_rate"])


def _read_mindwave(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    meta = _meta(root)
    epochs, labels, groups = [], [], []
    for k, name in enumerate(meta["classes"]):
        for path in sorted((root / name).glob("*.txt")):
            epochs.append(np.loadtxt(path, dtype=np.float64))
            labels.append(k)
            groups.append(re.match(meta["group_pattern"], path.name).group(1))
    return np.stack(epochs)[:, None, :], np.array(labels), np.array(groups), meta["sample_rate"]


READERS = {"emotiv": _read_emotiv, "trials64": _read_trials64, "mindwave": _read_mindwave}


@pytest.fixture(scope="module")
def epochs(demo_root: dict[str, Path]) -> dict[str, tuple[np.ndarray, ...]]:
    return {name: READERS[name](root) for name, root in demo_root.items()}


# --- Determinism and caching ---------------------------------------------------------------------


@pytest.mark.parametrize("name", list(DEMOS))
def test_same_seed_same_bytes_other_seed_other_data(name, demo_root, tmp_path):
    (tmp_path / "same").mkdir()
    (tmp_path / "other").mkdir()
    DEMOS[name].generate(tmp_path / "same", SEED)
    DEMOS[name].generate(tmp_path / "other", SEED + 1)
    reference = _digests(demo_root[name])
    assert _digests(tmp_path / "same") == reference
    other = _digests(tmp_path / "other")
    shared = set(other) & set(reference)
    assert not any(other[f] == reference[f] for f in shared if f != "dataset.yaml")


def test_ensure_demo_reuses_regenerates_and_never_deletes_foreign_folders(tmp_path):
    root = ensure_demo("emotiv", tmp_path / "demo", 5)
    marker = json.loads((root / MARKER).read_text())
    assert marker == {"name": "emotiv", "generator_version": emotiv.GENERATOR_VERSION, "seed": 5}
    stamps = {p: p.stat().st_mtime_ns for p in root.iterdir()}
    assert ensure_demo("emotiv", root, 5) == root
    assert {p: p.stat().st_mtime_ns for p in root.iterdir()} == stamps  # reused, not rewritten
    before = _digests(root)
    ensure_demo("emotiv", root, 6)  # another seed: regenerated in place
    assert json.loads((root / MARKER).read_text())["seed"] == 6
    assert _digests(root) != before
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]  # no partial folder left behind

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "recording.edf").write_text("user data")
    with pytest.raises(FileExistsError):
        ensure_demo("emotiv", foreign, 5)
    assert (foreign / "recording.edf").read_text() == "user data"

    with pytest.raises(ValueError, match=r"emotiv, trials64, mindwave"):
        ensure_demo("nope", tmp_path / "x", 5)


def test_interrupted_generation_leaves_nothing_behind(tmp_path, monkeypatch):
    def crash(root: Path, seed: int) -> None:
        (root / "half.edf").write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setattr(emotiv, "generate", crash)
    with pytest.raises(KeyboardInterrupt):
        ensure_demo("emotiv", tmp_path / "demo", 5)
    assert list(tmp_path.iterdir()) == []


# --- Layouts and metadata ------------------------------------------------------------------------


def test_emotiv_layout(demo_root):
    root = demo_root["emotiv"]
    assert _meta(root) == {
        "layout": "recordings",
        "classes": ["rest", "blink", "jaw"],
        "tmin": -0.1,
        "tmax": 0.4,
        "baseline": None,
    }
    events = pd.read_csv(root / "events.csv")
    assert list(events.columns) == ["file", "onset", "label", "subject"]
    assert 400 <= len(events) <= 600
    counts = events["label"].value_counts()
    assert set(counts.index) == {"rest", "blink", "jaw"}
    assert 1.1 < counts.max() / counts.min() < 2.0  # a little imbalanced
    assert events["subject"].nunique() == emotiv.N_SUBJECTS
    assert sorted(events["file"].unique()) == sorted(p.name for p in root.glob("*.edf"))
    assert events["file"].nunique() == emotiv.N_SESSIONS
    seconds = {}
    for file, rows in events.groupby("file"):
        assert rows["subject"].nunique() == 1 and file.startswith(rows["subject"].iloc[0])
        edf = edfio.read_edf(root / file)
        assert [s.label for s in edf.signals] == list(emotiv.CHANNELS)
        for s in edf.signals:
            assert s.sampling_frequency == 128
            assert s.physical_dimension == "uV"
            assert (s.physical_min, s.physical_max) == (-4000, 4000)
        seconds[rows["subject"].iloc[0]] = seconds.get(rows["subject"].iloc[0], 0) + edf.duration
        # Every marker's window lies inside its recording.
        assert rows["onset"].min() - 0.1 >= 0 and rows["onset"].max() + 0.4 <= edf.duration
        assert np.allclose(rows["onset"] * 128, np.round(rows["onset"] * 128))
    assert all(90 <= s <= 360 for s in seconds.values())  # a few minutes per subject


def test_trials64_layout(demo_root, epochs):
    root = demo_root["trials64"]
    meta = _meta(root)
    assert meta["layout"] == "arrays" and meta["sample_rate"] == 256 and meta["units"] == "uV"
    assert meta["classes"] == ["standard", "target"]
    assert meta["channels"] == list(trials64.CHANNELS)
    assert len(set(meta["channels"])) == 64 and {"Cz", "Pz", "Iz", "P10", "Fpz"} <= set(
        meta["channels"]
    )
    X, y, groups, _ = epochs["trials64"]
    assert X.dtype == np.float32 and X.shape == (1044, 64, 512)
    assert y.dtype.kind == "i" and set(np.unique(y)) == {0, 1}
    assert groups.dtype.kind == "U" and 8 <= len(np.unique(groups)) <= 12
    assert abs(y.mean() - 0.5) < 0.05


def test_mindwave_layout(demo_root, epochs):
    root = demo_root["mindwave"]
    meta = _meta(root)
    assert meta["layout"] == "folders" and meta["sample_rate"] == 512 and meta["units"] == "uV"
    assert meta["channels"] == ["FP1"] and meta["classes"] == list(mindwave.CLASSES)
    assert len(meta["classes"]) == 19 and meta["group_pattern"] == mindwave.GROUP_PATTERN
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted(meta["classes"])
    first = next((root / meta["classes"][0]).glob("*.txt")).read_text()
    assert first.count("\n") == 512 and not first.startswith(("#", "value"))
    X, y, groups, _ = epochs["mindwave"]
    assert X.shape[1:] == (1, 512) and 1200 <= len(X) <= 2000
    assert len(np.unique(groups)) == mindwave.N_SUBJECTS
    sizes = np.bincount(y, minlength=19)
    assert 4.0 <= sizes.max() / sizes.min() <= 6.0


@pytest.mark.parametrize("name", list(DEMOS))
def test_scale_is_microvolts_of_eeg(name, epochs):
    X = epochs[name][0]
    assert np.isfinite(X).all()
    assert 5.0 <= np.median(X.std(axis=-1)) <= 100.0


# --- Learnability ---------------------------------------------------------------------------------


def _band_power(X: np.ndarray, fs: float) -> np.ndarray:
    """Log power per channel in each band (Welch, 1 s segments or the whole epoch)."""
    f, psd = scipy.signal.welch(X, fs=fs, nperseg=min(X.shape[-1], int(fs)), axis=-1)
    bands = [psd[..., (f >= lo) & (f < hi)].mean(-1) for lo, hi in itertools.pairwise(BANDS_HZ)]
    return np.log(np.stack(bands, axis=-1)).reshape(len(X), -1)


def _time_course(X: np.ndarray, fs: float) -> np.ndarray:
    """The epoch at ~32 Hz (anti-aliased), each channel's mean removed."""
    ratio = Fraction(TIME_DOMAIN_HZ / fs).limit_denominator(64)
    x = scipy.signal.resample_poly(X, ratio.numerator, ratio.denominator, axis=-1)
    return (x - x.mean(axis=-1, keepdims=True)).reshape(len(X), -1)


def _grouped_cv(features: np.ndarray, y: np.ndarray, groups: np.ndarray) -> float:
    """Balanced accuracy of standardised, L2-regularised logistic regression under subject-grouped
    5-fold CV; the regularisation scales with the feature count (one rule for both models)."""
    model = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=10.0 / features.shape[1], class_weight="balanced", max_iter=3000),
    )
    # One thread: on a busy machine, BLAS threads of these small fits only wait for each other.
    with threadpool_limits(1):
        predicted = cross_val_predict(model, features, y, groups=groups, cv=GroupKFold(5))
    return balanced_accuracy_score(y, predicted)


@pytest.mark.parametrize("name", list(DEMOS))
def test_time_course_beats_band_power_beats_chance(name, epochs):
    X, y, groups, fs = epochs[name]
    chance = 1.0 / len(np.unique(y))
    band = _grouped_cv(_band_power(X, fs), y, groups)
    time = _grouped_cv(_time_course(X, fs), y, groups)
    print(f"{name}: chance {chance:.3f}, band power {band:.3f}, time course {time:.3f}")
    assert band > chance + 0.01
    assert time >= band + MARGIN
