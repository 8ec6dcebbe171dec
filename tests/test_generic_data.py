"""The generic layouts (folders, recordings, arrays, table, windows) and their bad inputs.

Every dataset is written here into ``tmp_path``: EDF files through edfio (with real EDF+
annotations), a minimal BDF writer for the 24-bit format edfio does not write, text and .npy
files. Values are checked exactly where the format stores them exactly (text, .npy) and within
the format's digital resolution where it quantises them (EDF 16-bit, BDF 24-bit).
"""

from __future__ import annotations

import re
from pathlib import Path

import edfio
import numpy as np
import pandas as pd
import pytest
import yaml

from hmsbrain.data.base import DataError
from hmsbrain.data.files import read_signal_file
from hmsbrain.data.layouts import detect_layout, read_epochs, read_windows
from hmsbrain.data.spec import DatasetSpec, FirstSeconds, read_spec

FS = 100  # Hz, a whole number of samples per 1 s EDF record


def signal(channels: int, seconds: float, seed: int = 0) -> np.ndarray:
    """``(channels, samples)`` float64 microvolts, a random walk like slow EEG drift."""
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(0, 5, (channels, round(seconds * FS))), axis=1)


def write_edf(
    path: Path,
    data: np.ndarray,
    names: list[str],
    fs: int = FS,
    annotations: tuple[tuple[float, str], ...] = (),
) -> Path:
    """An EDF+ file of ``data`` (microvolts) with ``(onset, text)`` annotations."""
    path.parent.mkdir(parents=True, exist_ok=True)
    signals = [
        edfio.EdfSignal(row, sampling_frequency=fs, label=name, physical_dimension="uV")
        for row, name in zip(data, names, strict=True)
    ]
    notes = [edfio.EdfAnnotation(onset, None, text) for onset, text in annotations]
    edfio.Edf(signals, annotations=notes).write(path)
    return path


def edf_resolution(data: np.ndarray) -> float:
    """The largest physical step of a 16-bit EDF channel of ``data`` (edfio's default range)."""
    return float((data.max(axis=1) - data.min(axis=1)).max() / 65535)


def write_bdf(path: Path, data: np.ndarray, names: list[str], fs: int = FS) -> Path:
    """A plain 24-bit BDF file (1 s records, no annotations), which edfio cannot write."""

    def field(value: object, width: int) -> bytes:
        return str(value).ljust(width)[:width].encode("ascii")

    n_ch, n = data.shape
    dmin, dmax = -(2**23), 2**23 - 1
    pmin, pmax = np.floor(data.min(axis=1)), np.ceil(data.max(axis=1))
    digital = np.round((data - pmin[:, None]) / (pmax - pmin)[:, None] * (dmax - dmin) + dmin)
    header = b"\xffBIOSEMI" + field("X", 80) + field("X", 80) + field("01.01.24", 8)
    header += field("00.00.00", 8) + field(256 * (n_ch + 1), 8) + field("24BIT", 44)
    header += field(n // fs, 8) + field(1, 8) + field(n_ch, 4)
    for values, width in [
        (names, 16),
        (["X"] * n_ch, 80),
        (["uV"] * n_ch, 8),
        (pmin.astype(int), 8),
        (pmax.astype(int), 8),
        ([dmin] * n_ch, 8),
        ([dmax] * n_ch, 8),
        (["X"] * n_ch, 80),
        ([fs] * n_ch, 8),
        ([""] * n_ch, 32),
    ]:
        header += b"".join(field(v, width) for v in values)
    # Records of fs samples per channel, each sample 3 little-endian bytes.
    records = digital.astype("<i4").reshape(n_ch, n // fs, fs).transpose(1, 0, 2)
    body = records.reshape(-1, 1).view(np.uint8)[:, :3].tobytes()
    path.write_bytes(header + body)
    return path


def write_yaml(root: Path, **settings: object) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.yaml").write_text(yaml.safe_dump(settings))


def write_text(
    path: Path, data: np.ndarray, header: list[str] | None = None, sep: str = ","
) -> Path:
    """``data`` (channels, samples) as rows of samples; values printed exactly (repr)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [sep.join(header)] if header else []
    lines += [sep.join(repr(float(v)) for v in row) for row in data.T]
    path.write_text("\n".join(lines) + "\n")
    return path


def raises(path: Path, *fragments: str):
    """``pytest.raises(DataError)`` whose message contains ``path`` and every fragment."""
    pattern = "".join(f"(?=.*{re.escape(str(f))})" for f in (path, *fragments))
    return pytest.raises(DataError, match=pattern)


# --- dataset.yaml ---------------------------------------------------------------------------


def test_spec_defaults_without_yaml(tmp_path: Path) -> None:
    spec = read_spec(tmp_path)
    assert spec == DatasetSpec(source=tmp_path / "dataset.yaml")
    assert spec.scale == 1.0


def test_spec_reads_every_key(tmp_path: Path) -> None:
    write_yaml(
        tmp_path,
        layout="recordings",
        sample_rate=256,
        channels=["Fz", "Cz"],
        units="V",
        classes=[0, "spike"],
        tmin=-1,
        tmax=2.5,
        baseline=[None, 0],
        events="ev.csv",
        group_pattern=r"^(\w+?)_",
    )
    spec = read_spec(tmp_path)
    assert (spec.layout, spec.sample_rate, spec.channels) == ("recordings", 256.0, ("Fz", "Cz"))
    assert (spec.units, spec.scale, spec.classes) == ("V", 1e6, ("0", "spike"))
    assert (spec.tmin, spec.tmax, spec.baseline, spec.events) == (-1.0, 2.5, (None, 0.0), "ev.csv")
    assert spec.group_pattern.pattern == r"^(\w+?)_"
    write_yaml(tmp_path, baseline={"first_seconds": 10})
    assert read_spec(tmp_path).baseline == FirstSeconds(10.0)


def test_spec_unknown_key(tmp_path: Path) -> None:
    write_yaml(tmp_path, sampling_rate=200)
    with raises(tmp_path / "dataset.yaml", "sampling_rate", "valid keys", "sample_rate"):
        read_spec(tmp_path)


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"layout": "grid"}, "layout must be one of"),
        ({"units": "mV"}, "units must be one of"),
        ({"sample_rate": True}, "sample_rate must be a number"),
        ({"tmin": 1, "tmax": 0.5}, "must be after tmin"),
        ({"baseline": [0, 1, 2]}, "baseline must be"),
        ({"tmin": 0, "tmax": 1, "baseline": [-1, 0]}, "before tmin"),
        ({"group_pattern": r"\w+"}, "exactly one capture group"),
        ({"classes": ["a", "a"]}, "more than once"),
    ],
)
def test_spec_bad_values(tmp_path: Path, settings: dict, problem: str) -> None:
    write_yaml(tmp_path, **settings)
    with raises(tmp_path / "dataset.yaml", problem):
        read_spec(tmp_path)


# --- One signal file ------------------------------------------------------------------------


def test_text_with_header_names_channels(tmp_path: Path) -> None:
    data = signal(3, 2)
    path = write_text(tmp_path / "a.csv", data, header=["Fz", "Cz", "Pz"])
    out, sfreq, names = read_signal_file(path, DatasetSpec(sample_rate=FS))
    assert out.dtype == np.float32 and sfreq == FS and names == ("Fz", "Cz", "Pz")
    np.testing.assert_array_equal(out, data.astype(np.float32))
    # dataset.yaml's order wins over the file's when the names are the same.
    out, _, names = read_signal_file(path, DatasetSpec(sample_rate=FS, channels=("Pz", "Fz", "Cz")))
    assert names == ("Pz", "Fz", "Cz")
    np.testing.assert_array_equal(out, data[[2, 0, 1]].astype(np.float32))


def test_headerless_single_column_in_volts(tmp_path: Path) -> None:
    data = signal(1, 2) * 1e-6
    path = write_text(tmp_path / "a.txt", data, sep=" ")
    out, _, names = read_signal_file(path, DatasetSpec(sample_rate=FS, units="V"))
    assert out.shape == (1, 2 * FS) and names == ("ch1",)
    np.testing.assert_array_equal(out, (data * 1e6).astype(np.float32))


def test_npy_one_and_two_dimensional(tmp_path: Path) -> None:
    data = signal(2, 1).astype(np.float32)
    np.save(tmp_path / "a.npy", data)
    np.save(tmp_path / "b.npy", data[0])
    spec = DatasetSpec(sample_rate=FS, channels=("C3", "C4"))
    out, _, names = read_signal_file(tmp_path / "a.npy", spec)
    assert names == ("C3", "C4")
    np.testing.assert_array_equal(out, data)
    out, _, names = read_signal_file(tmp_path / "b.npy", DatasetSpec(sample_rate=FS))
    np.testing.assert_array_equal(out, data[:1])


def test_edf_round_trip_and_channel_subset(tmp_path: Path) -> None:
    data = signal(3, 4)
    path = write_edf(tmp_path / "a.edf", data, ["Fz", "Cz", "Pz"])
    out, sfreq, names = read_signal_file(path, DatasetSpec())
    assert (sfreq, names, out.dtype) == (FS, ("Fz", "Cz", "Pz"), np.float32)
    # MNE returns volts; the reader gives microvolts within one EDF digital step.
    np.testing.assert_allclose(out, data, rtol=0, atol=edf_resolution(data))
    out, _, names = read_signal_file(path, DatasetSpec(channels=("Pz", "Fz")))
    assert names == ("Pz", "Fz")
    np.testing.assert_allclose(out, data[[2, 0]], rtol=0, atol=edf_resolution(data))


def test_bdf_round_trip(tmp_path: Path) -> None:
    data = signal(2, 3)
    path = write_bdf(tmp_path / "a.BDF", data, ["C3", "C4"])
    out, sfreq, names = read_signal_file(path, DatasetSpec())
    assert (sfreq, names) == (FS, ("C3", "C4"))
    step = (np.ceil(data.max()) - np.floor(data.min())) / (2**24 - 1)
    np.testing.assert_allclose(out, data, rtol=0, atol=2 * step + 1e-4)  # float32 rounding


def test_wrong_channel_count(tmp_path: Path) -> None:
    path = write_text(tmp_path / "a.csv", signal(2, 1))
    with raises(path, "2 channels", "expected 3", "'Fz', 'Cz', 'Pz'"):
        read_signal_file(path, DatasetSpec(sample_rate=FS, channels=("Fz", "Cz", "Pz")))


def test_wrong_channel_names(tmp_path: Path) -> None:
    path = write_edf(tmp_path / "a.edf", signal(2, 1), ["Fz", "Cz"])
    with raises(path, "missing channels ['Pz']", "expected ['Fz', 'Pz']", "found ['Fz', 'Cz']"):
        read_signal_file(path, DatasetSpec(channels=("Fz", "Pz")))
    text = write_text(tmp_path / "a.csv", signal(2, 1), header=["Fz", "Cz"])
    with raises(text, "expected channels ['Fz', 'Pz']", "found ['Fz', 'Cz']"):
        read_signal_file(text, DatasetSpec(sample_rate=FS, channels=("Fz", "Pz")))


def test_truncated_edf_is_an_error_not_a_warning(tmp_path: Path) -> None:
    path = write_edf(tmp_path / "a.edf", signal(2, 3), ["Fz", "Cz"])
    path.write_bytes(path.read_bytes()[:-10])
    with raises(path, "not a readable EDF file", "does not match the file size"):
        read_signal_file(path, DatasetSpec())


def test_corrupt_edf(tmp_path: Path) -> None:
    path = tmp_path / "a.edf"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    with raises(path, "not a readable EDF file"):
        read_signal_file(path, DatasetSpec())


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_and_inf(tmp_path: Path, value: float) -> None:
    data = signal(2, 1)
    data[1, 5] = data[0, 7] = value
    nan, inf = (2, 0) if np.isnan(value) else (0, 2)
    text = write_text(tmp_path / "a.csv", data)
    with raises(text, f"{nan} NaN and {inf} infinite values"):
        read_signal_file(text, DatasetSpec(sample_rate=FS))
    np.save(tmp_path / "a.npy", data)
    with raises(tmp_path / "a.npy", f"{nan} NaN and {inf} infinite values"):
        read_signal_file(tmp_path / "a.npy", DatasetSpec(sample_rate=FS))


def test_missing_sample_rate(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", signal(2, 1))
    with raises(tmp_path / "a.npy", "no sampling rate: set sample_rate in dataset.yaml"):
        read_signal_file(tmp_path / "a.npy", DatasetSpec())


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("a.csv", b"", "empty file"),
        ("a.csv", b"Fz,Cz\n", "no samples"),
        ("a.csv", b"1,2\n3,x\n", "not a table of numbers"),
        ("a.npy", b"not numpy", "not a readable .npy file"),
    ],
)
def test_unreadable_files(tmp_path: Path, name: str, content: bytes, problem: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with raises(path, problem):
        read_signal_file(path, DatasetSpec(sample_rate=FS))


# --- folders --------------------------------------------------------------------------------


def test_folders_mixed_file_types(tmp_path: Path) -> None:
    a, b, c = signal(2, 2, seed=1), signal(2, 2, seed=2), signal(2, 2, seed=3)
    write_yaml(tmp_path, sample_rate=FS, channels=["Fz", "Cz"], group_pattern=r"^(s\d+)_")
    write_text(tmp_path / "spike" / "s1_a.csv", a)
    np.save(tmp_path / "spike" / "s2_b.npy", b)
    write_edf(tmp_path / "normal" / "s1_c.edf", c, ["Cz", "Fz"])  # other order: reordered
    (tmp_path / "normal" / "notes.md").write_text("not a signal")
    ep = read_epochs(tmp_path)
    assert detect_layout(tmp_path, read_spec(tmp_path)) == "folders"
    assert ep.classes == ("normal", "spike") and ep.hard and ep.channels == ("Fz", "Cz")
    assert list(ep.ids) == ["normal/s1_c.edf", "spike/s1_a.csv", "spike/s2_b.npy"]
    assert list(ep.files) == list(ep.ids) and list(ep.groups) == ["s1", "s1", "s2"]
    np.testing.assert_array_equal(ep.targets, [[1, 0], [0, 1], [0, 1]])
    assert ep.targets.dtype == np.float64 and ep.sfreq == FS and ep.signals.dtype == np.float32
    np.testing.assert_allclose(ep.signals[0], c[[1, 0]], rtol=0, atol=edf_resolution(c))
    np.testing.assert_array_equal(ep.signals[1], a.astype(np.float32))
    np.testing.assert_array_equal(ep.signals[2], b.astype(np.float32))


def test_folders_class_order_from_spec(tmp_path: Path) -> None:
    write_yaml(tmp_path, sample_rate=FS, classes=["z", "a", "unused"])
    for name in ("a", "z"):
        (tmp_path / name).mkdir()
        np.save(tmp_path / name / "1.npy", signal(1, 1))
    ep = read_epochs(tmp_path)
    assert ep.classes == ("z", "a", "unused") and ep.groups is None
    np.testing.assert_array_equal(ep.targets, [[0, 1, 0], [1, 0, 0]])


def test_unknown_class_folder(tmp_path: Path) -> None:
    write_yaml(tmp_path, sample_rate=FS, classes=["spike"])
    write_text(tmp_path / "spike" / "1.csv", signal(1, 1))
    write_text(tmp_path / "sharp" / "1.csv", signal(1, 1))
    with raises(tmp_path / "sharp", "unknown class folder 'sharp'", "['spike']"):
        read_epochs(tmp_path)


def test_mixed_sampling_rates(tmp_path: Path) -> None:
    write_edf(tmp_path / "a" / "1.edf", signal(1, 2), ["Fz"])
    path = write_edf(tmp_path / "b" / "1.edf", signal(1, 2.56), ["Fz"], fs=128)
    with raises(path, "128 Hz", "100 Hz", str(tmp_path / "a" / "1.edf")):
        read_epochs(tmp_path)


def test_group_pattern_not_matching(tmp_path: Path) -> None:
    write_yaml(tmp_path, sample_rate=FS, group_pattern=r"^(s\d+)_")
    write_text(tmp_path / "a" / "x.csv", signal(1, 1))
    with raises(tmp_path / "a" / "x.csv", "does not match group_pattern"):
        read_epochs(tmp_path)


# --- recordings -----------------------------------------------------------------------------


def test_recordings_from_annotations_with_baseline(tmp_path: Path) -> None:
    data = signal(2, 10)
    notes = ((2.0, "spike"), (6.5, "normal"), (3.0, "spike"))
    write_edf(tmp_path / "rec.edf", data, ["Fz", "Cz"], annotations=notes)
    write_yaml(tmp_path, tmin=-0.5, tmax=1.0, baseline=[None, 0])
    ep = read_epochs(tmp_path)
    assert ep.classes == ("normal", "spike") and ep.hard and ep.groups is None
    assert list(ep.ids) == ["rec.edf@2", "rec.edf@3", "rec.edf@6.5"]
    assert list(ep.files) == ["rec.edf"] * 3
    np.testing.assert_allclose(ep.starts, [1.5, 2.5, 6.0])
    np.testing.assert_array_equal(ep.targets, [[0, 1], [0, 1], [1, 0]])
    assert ep.signals.shape == (3, 2, 151)  # MNE includes both tmin and tmax
    for i, onset in enumerate([2.0, 3.0, 6.5]):
        window = data[:, round((onset - 0.5) * FS) : round((onset + 1.0) * FS) + 1]
        # Baseline [None, 0]: the mean of the samples from tmin up to the event, inclusive.
        expected = window - window[:, : round(0.5 * FS) + 1].mean(axis=1, keepdims=True)
        np.testing.assert_allclose(ep.signals[i], expected, rtol=0, atol=edf_resolution(data))


def test_recordings_from_events_table(tmp_path: Path) -> None:
    a, b = signal(2, 8, seed=1), signal(3, 8, seed=2)
    write_edf(tmp_path / "a.edf", a, ["Fz", "Cz"])
    write_edf(tmp_path / "b.edf", b, ["Cz", "Fz", "Status"])  # other order, extra channel
    pd.DataFrame(
        {
            "file": ["a.edf", "b.edf", "a.edf"],
            "onset": [4, 5, 1.5],
            "label": ["sz", "sz", "bg"],
            "subject": ["p1", "p2", "p1"],
        }
    ).to_csv(tmp_path / "events.csv", index=False)
    write_yaml(
        tmp_path,
        classes=["bg", "sz"],
        channels=["Fz", "Cz"],
        tmax=2.0,
        baseline={"first_seconds": 1},
    )
    ep = read_epochs(tmp_path)
    assert list(ep.ids) == ["a.edf@1.5", "a.edf@4", "b.edf"]
    assert list(ep.groups) == ["p1", "p1", "p2"] and ep.classes == ("bg", "sz")
    np.testing.assert_array_equal(ep.targets, [[1, 0], [0, 1], [0, 1]])
    for i, (data, onset) in enumerate([(a, 1.5), (a, 4.0), (b[[1, 0]], 5.0)]):
        window = data[:, round(onset * FS) : round((onset + 2) * FS) + 1]
        expected = window - data[:, :FS].mean(axis=1, keepdims=True)
        tol = 2 * max(edf_resolution(a), edf_resolution(b))
        np.testing.assert_allclose(ep.signals[i], expected, rtol=0, atol=tol)


def test_events_table_names_a_missing_file(tmp_path: Path) -> None:
    write_edf(tmp_path / "a.edf", signal(1, 5), ["Fz"])
    events = tmp_path / "events.csv"
    events.write_text("file,onset,label\na.edf,1,x\nb.edf,2,x\n")
    write_yaml(tmp_path, tmax=1)
    with raises(events, "line 3", "'b.edf' not found"):
        read_epochs(tmp_path)


def test_event_past_the_end(tmp_path: Path) -> None:
    path = write_edf(tmp_path / "a.edf", signal(1, 5), ["Fz"], annotations=((4.5, "x"),))
    write_yaml(tmp_path, tmax=1)
    with raises(path, "onset 4.5 s", "does not fit inside the recording (0..5 s)"):
        read_epochs(tmp_path)


def test_event_label_not_in_classes(tmp_path: Path) -> None:
    write_edf(tmp_path / "a.edf", signal(1, 5), ["Fz"])
    events = tmp_path / "events.csv"
    events.write_text("file,onset,label\na.edf,1,x\na.edf,2,y\n")
    write_yaml(tmp_path, tmax=1, classes=["x"])
    with raises(events, "line 3", "label 'y'"):
        read_epochs(tmp_path)


def test_recordings_need_tmax(tmp_path: Path) -> None:
    write_edf(tmp_path / "a.edf", signal(1, 5), ["Fz"], annotations=((1, "x"),))
    with raises(tmp_path / "dataset.yaml", "tmax is required"):
        read_epochs(tmp_path)


# --- arrays ---------------------------------------------------------------------------------


def test_arrays_integer_labels_and_groups(tmp_path: Path) -> None:
    X = np.stack([signal(2, 1, seed=i) for i in range(3)]) * 1e-6
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", np.array([2, 0, 2]))
    np.save(tmp_path / "groups.npy", np.array([7, 7, 8]))
    write_yaml(tmp_path, sample_rate=FS, units="V", classes=["a", "b", "c"])
    ep = read_epochs(tmp_path)
    assert ep.classes == ("a", "b", "c") and ep.hard and ep.channels == ("ch1", "ch2")
    assert list(ep.ids) == ["epoch-0", "epoch-1", "epoch-2"] and list(ep.groups) == ["7", "7", "8"]
    np.testing.assert_array_equal(ep.targets, [[0, 0, 1], [1, 0, 0], [0, 0, 1]])
    np.testing.assert_array_equal(ep.signals, (X * 1e6).astype(np.float32))


def test_arrays_text_and_soft_labels(tmp_path: Path) -> None:
    np.save(tmp_path / "X.npy", np.zeros((3, 1, 10), dtype=np.float32))
    write_yaml(tmp_path, sample_rate=FS)
    np.save(tmp_path / "y.npy", np.array(["b", "a", "b"]))
    ep = read_epochs(tmp_path)
    assert ep.classes == ("a", "b") and ep.votes is None
    np.testing.assert_array_equal(ep.targets, [[0, 1], [1, 0], [0, 1]])
    np.save(tmp_path / "y.npy", np.array([[3.0, 1.0], [0.0, 2.0], [1.0, 1.0]]))
    ep = read_epochs(tmp_path)
    assert ep.classes == ("0", "1") and not ep.hard
    np.testing.assert_array_equal(ep.targets, [[0.75, 0.25], [0, 1], [0.5, 0.5]])
    np.testing.assert_array_equal(ep.votes, [4, 2, 2])


def test_arrays_length_mismatch(tmp_path: Path) -> None:
    np.save(tmp_path / "X.npy", np.zeros((3, 1, 10)))
    np.save(tmp_path / "y.npy", np.array([0, 1]))
    write_yaml(tmp_path, sample_rate=FS)
    with raises(tmp_path / "y.npy", "2 entries", str(tmp_path / "X.npy"), "3 epochs"):
        read_epochs(tmp_path)


def test_arrays_label_out_of_range(tmp_path: Path) -> None:
    np.save(tmp_path / "X.npy", np.zeros((2, 1, 10)))
    np.save(tmp_path / "y.npy", np.array([0, 2]))
    write_yaml(tmp_path, sample_rate=FS, classes=["a", "b"])
    with raises(tmp_path / "y.npy", "label 2 at row 1", "outside 0..1"):
        read_epochs(tmp_path)


def test_arrays_need_sample_rate(tmp_path: Path) -> None:
    np.save(tmp_path / "X.npy", np.zeros((2, 1, 10)))
    np.save(tmp_path / "y.npy", np.array([0, 1]))
    with raises(tmp_path / "X.npy", "no sampling rate"):
        read_epochs(tmp_path)


# --- table ----------------------------------------------------------------------------------


def test_table_hard_labels_with_crops(tmp_path: Path) -> None:
    rec, short = signal(2, 10, seed=1), signal(2, 2, seed=2)
    write_edf(tmp_path / "rec.edf", rec, ["Fz", "Cz"])
    write_text(tmp_path / "txt" / "short.csv", short, header=["Fz", "Cz"])
    write_yaml(tmp_path, sample_rate=FS)
    pd.DataFrame(
        {
            "file": ["rec.edf", "rec.edf", "txt/short.csv"],
            "start": [1, 5.5, None],
            "stop": [3, 7.5, None],
            "label": ["b", "a", "b"],
            "group": ["p1", "p1", "p2"],
        }
    ).to_csv(tmp_path / "epochs.csv", index=False)
    ep = read_epochs(tmp_path)
    assert ep.classes == ("a", "b") and ep.hard and list(ep.groups) == ["p1", "p1", "p2"]
    assert list(ep.ids) == ["rec.edf@1", "rec.edf@5.5", "txt/short.csv"]
    assert list(ep.files) == ["rec.edf", "rec.edf", "txt/short.csv"]
    np.testing.assert_array_equal(ep.starts, [1, 5.5, 0])
    np.testing.assert_array_equal(ep.targets, [[0, 1], [1, 0], [0, 1]])
    tol = edf_resolution(rec)
    np.testing.assert_allclose(ep.signals[0], rec[:, 100:300], rtol=0, atol=tol)
    np.testing.assert_allclose(ep.signals[1], rec[:, 550:750], rtol=0, atol=tol)
    np.testing.assert_array_equal(ep.signals[2], short.astype(np.float32))


def test_table_soft_labels(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", signal(1, 1))
    write_yaml(tmp_path, sample_rate=FS, classes=["x", "y"])
    table = tmp_path / "epochs.csv"
    table.write_text("file,start,stop,y,x\na.npy,0,0.5,3,1\na.npy,0.5,1,0,2\n")
    ep = read_epochs(tmp_path)
    assert ep.classes == ("x", "y") and not ep.hard
    np.testing.assert_array_equal(ep.targets, [[0.25, 0.75], [1, 0]])
    np.testing.assert_array_equal(ep.votes, [4, 2])
    assert list(ep.ids) == ["a.npy@0", "a.npy@0.5"] and ep.signals.shape == (2, 1, 50)
    table.write_text("file,y,x\na.npy,0.3,0.7\n")
    ep = read_epochs(tmp_path)
    assert ep.votes is None
    np.testing.assert_allclose(ep.targets, [[0.7, 0.3]])
    table.write_text("file,y,x\na.npy,0,0\n")
    with raises(table, "line 2", "sum to 0"):
        read_epochs(tmp_path)


def test_table_row_with_missing_file(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", signal(1, 1))
    write_yaml(tmp_path, sample_rate=FS)
    table = tmp_path / "epochs.csv"
    table.write_text("file,label\na.npy,x\nb.npy,y\n")
    with raises(table, "line 3", "file 'b.npy' not found"):
        read_epochs(tmp_path)


def test_table_crop_out_of_range(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", signal(1, 1))
    write_yaml(tmp_path, sample_rate=FS)
    table = tmp_path / "epochs.csv"
    table.write_text("file,start,stop,label\na.npy,0.5,1.5,x\n")
    with raises(table, "line 2", "'a.npy'", "outside"):
        read_epochs(tmp_path)


# --- detection and windows ------------------------------------------------------------------


def test_detect_layout(tmp_path: Path) -> None:
    spec = DatasetSpec()
    with raises(tmp_path, "cannot tell the data layout", "X.npy", "epochs.csv", "events.csv"):
        detect_layout(tmp_path, spec)
    write_text(tmp_path / "cls" / "a.csv", signal(1, 1))
    assert detect_layout(tmp_path, spec) == "folders"
    write_edf(tmp_path / "r.edf", signal(1, 1), ["Fz"])
    assert detect_layout(tmp_path, spec) == "recordings"
    (tmp_path / "epochs.csv").write_text("file\n")
    assert detect_layout(tmp_path, spec) == "table"
    np.save(tmp_path / "X.npy", np.zeros((1, 1, 1)))
    np.save(tmp_path / "y.npy", np.zeros(1))
    assert detect_layout(tmp_path, spec) == "arrays"
    assert detect_layout(tmp_path, DatasetSpec(layout="folders")) == "folders"


def test_read_windows(tmp_path: Path) -> None:
    a, b = signal(2, 5, seed=1), signal(2, 1, seed=2)
    write_edf(tmp_path / "night.edf", a, ["Fz", "Cz"])
    write_text(tmp_path / "tiny.csv", b, header=["Fz", "Cz"])  # shorter than a window
    write_yaml(tmp_path, sample_rate=FS)
    ep = read_windows(tmp_path, window_seconds=2, stride_seconds=1.5)
    assert list(ep.ids) == ["night@0", "night@1.5", "night@3"] and not ep.labelled
    np.testing.assert_array_equal(ep.starts, [0, 1.5, 3])
    assert list(ep.files) == ["night.edf"] * 3 and ep.signals.shape == (3, 2, 200)
    np.testing.assert_allclose(ep.signals[1], a[:, 150:350], rtol=0, atol=edf_resolution(a))
