"""Shared fixtures: the real HMS files (when present), a small demo dataset, a tiny Kaggle folder.

The real files live in ``../shared/data`` beside the repository root. CI has them; a user's clone
does not, so every test that needs them is skipped there with the reason below instead of failing.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hmsbrain.hms import demo
from hmsbrain.hms.constants import (
    CHAIN_NAMES,
    EEG_COLUMNS,
    SAMPLE_RATE,
    SPEC_BINS_PER_CHAIN,
    SPEC_FFT_SIZE,
    SPEC_FIRST_BIN,
    SPEC_TIME_COLUMN,
    VOTE_COLUMNS,
)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SKIP_SAMPLE = (
    "needs ../shared/data/hms-sample (real HMS files; present in CI, absent in a user's clone)"
)
SKIP_LABELS = (
    "needs ../shared/data/hms-labels/train_labels.parquet "
    "(real HMS vote labels; present in CI, absent in a user's clone)"
)

# Small enough to generate in a few seconds, big enough to have several patients, EEGs with
# several sub-windows, and a test split.
SMALL_DEMO_SEED = 7
SMALL_DEMO_SIZE = demo.DemoSize(
    n_patients=6, mean_eegs_per_patient=2.0, max_sub_windows=3, n_test=2
)


# Enough patients that a short run learns measurably (3 folds of about 30 validation EEGs).
LEARNABLE_DEMO_SIZE = demo.DemoSize(
    n_patients=30, mean_eegs_per_patient=3.0, max_sub_windows=3, n_test=2
)


# Left <-> right electrode pairs of the Kaggle columns, written out here: the reference that the
# hemisphere swap of every stage (core/mirror.py) is checked against. Midline and EKG stay.
LEFT_RIGHT = {
    "Fp1": "Fp2",
    "F3": "F4",
    "C3": "C4",
    "P3": "P4",
    "F7": "F8",
    "T3": "T4",
    "T5": "T6",
    "O1": "O2",
}


def mirrored_eeg(eeg: np.ndarray) -> np.ndarray:
    """The recording ``(..., samples, 20)`` with its hemispheres exchanged: each electrode's
    column holds its mirror's."""
    mirror = {**LEFT_RIGHT, **{right: left for left, right in LEFT_RIGHT.items()}}
    return eeg[..., [EEG_COLUMNS.index(mirror.get(c, c)) for c in EEG_COLUMNS]]


@pytest.fixture(scope="session")
def hms_sample_dir() -> Path:
    """The real Kaggle sample folder (9 train sub-windows of one EEG, one test EEG)."""
    root = SHARED_DATA / "hms-sample"
    if not (root / "train.csv").is_file():
        pytest.skip(SKIP_SAMPLE)
    return root


@pytest.fixture(scope="session")
def hms_labels_path() -> Path:
    """The full-scale vote table of the real train set (106,519 rows)."""
    path = SHARED_DATA / "hms-labels" / "train_labels.parquet"
    if not path.is_file():
        pytest.skip(SKIP_LABELS)
    return path


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo dataset in the Kaggle layout, generated once per session (read-only use)."""
    return demo.ensure_demo(
        tmp_path_factory.mktemp("demo") / "demo", seed=SMALL_DEMO_SEED, size=SMALL_DEMO_SIZE
    )


@pytest.fixture(scope="session")
def learnable_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo dataset big enough for the learning tests (about 10 s to generate)."""
    return demo.ensure_demo(
        tmp_path_factory.mktemp("learnable") / "demo",
        seed=SMALL_DEMO_SEED,
        size=LEARNABLE_DEMO_SIZE,
    )


# --- A tiny, hand-made Kaggle-layout folder for bad-input tests -----------------------------------


def spec_columns() -> list[str]:
    """Kaggle spectrogram column names, ``LL_0.59`` .. ``RP_19.92``, in the files' order."""
    freqs = np.arange(SPEC_FIRST_BIN, SPEC_FIRST_BIN + SPEC_BINS_PER_CHAIN) * 200 / SPEC_FFT_SIZE
    return [f"{chain}_{f:.2f}" for chain in CHAIN_NAMES for f in freqs]


def write_parquet(path: Path, data: np.ndarray, columns: list[str]) -> Path:
    """float32 columns, as in the competition files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = [
        pa.array(np.ascontiguousarray(data[:, i], dtype=np.float32)) for i in range(len(columns))
    ]
    pq.write_table(pa.Table.from_arrays(arrays, names=list(columns)), path)
    return path


def write_spectrogram(path: Path, spec: np.ndarray, columns: list[str] | None = None) -> Path:
    """A Kaggle spectrogram file: an int ``time`` column (2 s row centres) + 400 float columns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = spec_columns() if columns is None else columns
    arrays = [pa.array(np.arange(len(spec), dtype=np.int64) * 2 + 1)]
    arrays += [
        pa.array(np.ascontiguousarray(spec[:, i], dtype=np.float32)) for i in range(len(columns))
    ]
    pq.write_table(pa.Table.from_arrays(arrays, names=[SPEC_TIME_COLUMN, *columns]), path)
    return path


@dataclass
class TinyKaggle:
    """A valid two-row train split and one-row test split; tests corrupt one piece at a time.

    Train: EEG 111 (60 s) labelled at offsets 0 and 10 s, spectrogram 222 (310 rows), patient 5.
    Test: EEG 333 (50 s), spectrogram 444 (300 rows), patient 6.
    """

    root: Path
    train_eeg_id: int = 111
    train_spec_id: int = 222
    test_eeg_id: int = 333
    test_spec_id: int = 444

    @property
    def train_csv(self) -> Path:
        return self.root / "train.csv"

    @property
    def test_csv(self) -> Path:
        return self.root / "test.csv"

    def eeg_path(self, split: str = "train") -> Path:
        eeg_id = self.train_eeg_id if split == "train" else self.test_eeg_id
        return self.root / f"{split}_eegs" / f"{eeg_id}.parquet"

    def spec_path(self, split: str = "train") -> Path:
        spec_id = self.train_spec_id if split == "train" else self.test_spec_id
        return self.root / f"{split}_spectrograms" / f"{spec_id}.parquet"

    def train_rows(self) -> pd.DataFrame:
        """The train table as written; modify and pass to :meth:`write_train_csv`."""
        return pd.read_csv(self.train_csv)

    def write_train_csv(self, rows: pd.DataFrame) -> None:
        rows.to_csv(self.train_csv, index=False)

    def write_test_csv(self, rows: pd.DataFrame) -> None:
        rows.to_csv(self.test_csv, index=False)

    def write_eeg(
        self, data: np.ndarray, split: str = "train", columns: list[str] | None = None
    ) -> Path:
        return write_parquet(self.eeg_path(split), data, list(columns or EEG_COLUMNS))

    def write_spec(
        self, spec: np.ndarray, split: str = "train", columns: list[str] | None = None
    ) -> Path:
        return write_spectrogram(self.spec_path(split), spec, columns)

    @staticmethod
    def spec_columns() -> list[str]:
        return spec_columns()

    @staticmethod
    def eeg_signal(seconds: float, seed: int = 0) -> np.ndarray:
        return eeg_signal(seconds, seed)


def eeg_signal(seconds: float, seed: int = 0) -> np.ndarray:
    """Random-walk-ish referential EEG ``(samples, 20)`` in microvolts."""
    rng = np.random.default_rng(seed)
    n = round(seconds * SAMPLE_RATE)
    return (20.0 * rng.standard_normal((n, len(EEG_COLUMNS)))).astype(np.float32)


def make_tiny_kaggle(root: Path) -> TinyKaggle:
    tk = TinyKaggle(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    votes = [[3, 0, 0, 0, 0, 1], [0, 2, 0, 0, 0, 2]]
    tk.write_train_csv(
        pd.DataFrame(
            {
                "eeg_id": [tk.train_eeg_id] * 2,
                "eeg_sub_id": [0, 1],
                "eeg_label_offset_seconds": [0.0, 10.0],
                "spectrogram_id": [tk.train_spec_id] * 2,
                "spectrogram_sub_id": [0, 1],
                "spectrogram_label_offset_seconds": [0.0, 10.0],
                "label_id": [1, 2],
                "patient_id": [5, 5],
                "expert_consensus": ["Seizure", "LPD"],
                **{c: [v[i] for v in votes] for i, c in enumerate(VOTE_COLUMNS)},
            }
        )
    )
    tk.write_test_csv(
        pd.DataFrame(
            {"spectrogram_id": [tk.test_spec_id], "eeg_id": [tk.test_eeg_id], "patient_id": [6]}
        )
    )
    sample = pd.DataFrame({"eeg_id": [tk.test_eeg_id], **{c: [1 / 6] for c in VOTE_COLUMNS}})
    sample.to_csv(root / "sample_submission.csv", index=False)
    tk.write_eeg(eeg_signal(60, seed=2), "train")
    tk.write_eeg(eeg_signal(50, seed=3), "test")
    write_spectrogram(tk.spec_path("train"), rng.gamma(2.0, 3.0, (310, 400)))
    write_spectrogram(tk.spec_path("test"), rng.gamma(2.0, 3.0, (300, 400)))
    return tk


@pytest.fixture
def tiny_kaggle(tmp_path: Path) -> TinyKaggle:
    """A fresh, valid, tiny Kaggle-layout folder in ``tmp_path`` (no real data copied)."""
    return make_tiny_kaggle(tmp_path / "kaggle")


# --- A tiny trained run, shared by the training, prediction and ensembling tests ----------------


def tiny_config(data_dir: Path, tmp_path: Path, backbone: str = "effnetv2"):
    """A run on HMS settings that takes seconds: 32 x 32 images, a small WaveNet, 2 + 1 epochs,
    3 folds."""
    from hmsbrain.config import hms_config

    return hms_config(tiny_overrides(data_dir, tmp_path, backbone))


def tiny_overrides(data_dir: Path, tmp_path: Path, backbone: str = "effnetv2") -> list[str]:
    """:func:`tiny_config`'s settings as ``train.py`` overrides (on the HMS demo recipe)."""
    return [
        f"data.data_dir={data_dir}",
        f"data.cache_dir={tmp_path / 'cache'}",
        f"train.output_dir={tmp_path / 'outputs'}",
        f"model.backbone={backbone}",
        "model.weights=none",
        "model.wavenet.filters=8",
        "model.wavenet.blocks=2",
        "model.wavenet.dilations=[1, 2]",
        "preprocess.n_mels=8",
        "preprocess.n_frames=16",
        "folds.n_folds=3",
        "train.batch_size=4",
        "train.stage1_epochs=2",
        "train.stage2_epochs=1",
        "data.min_votes=[0, 3]",
        "train.val_batch_size=8",
    ]


@dataclass
class TinyRun:
    cfg: object
    summary: dict
    tmp_path: Path

    @property
    def run_dir(self) -> Path:
        return self.tmp_path / "outputs" / "effnetv2"


@pytest.fixture(scope="session")
def tiny_run(small_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    """Fold 1 of a tiny hybrid EfficientNetV2 run on the small demo (trained once per session)."""
    from hmsbrain.training.loop import train_fold

    tmp_path = tmp_path_factory.mktemp("tiny_run")
    cfg = tiny_config(small_demo, tmp_path)
    return TinyRun(cfg, train_fold(cfg, fold=1), tmp_path)


@pytest.fixture(scope="session")
def wavenet_run(small_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second tiny run (WaveNet alone, same fold), so a package holds a real blend."""
    from hmsbrain.training.loop import train_fold

    tmp_path = tmp_path_factory.mktemp("wavenet_run")
    train_fold(tiny_config(small_demo, tmp_path, backbone="wavenet"), fold=1)
    return tmp_path / "outputs" / "wavenet"


@pytest.fixture(scope="session")
def packaged(
    hms_sample_dir: Path,
    tiny_run: TinyRun,
    wavenet_run: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """predict.py + ensemble.py on the sample test EEG, then package.py on their report:
    ``sample.json``, ``sample.csv`` (ensemble.py's submission) and ``dist/`` (the package)."""
    from hmsbrain.cli import ensemble_main, package_main
    from hmsbrain.inference.predict import predict_run

    tmp = tmp_path_factory.mktemp("package")
    runs = [tiny_run.run_dir, wavenet_run]
    for run in runs:
        predict_run(run, str(hms_sample_dir), "test")
    ensemble_main([*map(str, runs), "--name", "sample", "--out-dir", str(tmp)])
    # Without wheels: most tests run where onnxruntime is installed (tests/test_kaggle_image.py
    # packages them and installs them in an environment like Kaggle's image).
    dist = str(tmp / "dist")
    package_main(
        [str(tmp / "sample.json"), "--out-dir", dist, "--kaggle-user", "tester", "--no-wheels"]
    )
    return tmp


def resave_keras(fold: Path, keras_version: str, class_name: str | None = None) -> None:
    """Rewrite a fold's model.keras as if Keras ``keras_version`` had saved it (and, with
    ``class_name``, as a model of a class this Keras does not know, so it cannot load it)."""
    path = fold / "model.keras"
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    meta = json.loads(entries["metadata.json"])
    entries["metadata.json"] = json.dumps({**meta, "keras_version": keras_version}).encode()
    if class_name is not None:
        config = json.loads(entries["config.json"])
        entries["config.json"] = json.dumps({**config, "class_name": class_name}).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``@pytest.mark.gpu`` tests cleanly where no GPU is visible (CI, most laptops)."""
    if not any(item.get_closest_marker("gpu") for item in items):
        return
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU visible to TensorFlow; none found")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)
