"""The input cache: keyed on everything the inputs depend on, reads only the files the model
needs, and with fallback keeps going past an unreadable EEG while naming it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hmsbrain.config import hms_config
from hmsbrain.core.inputs import Batch
from hmsbrain.data import cache as cache_module
from hmsbrain.data.base import DataError
from hmsbrain.data.cache import cache_key, open_cache
from hmsbrain.hms.dataset import HMSDataset

RAW_ONLY = ("raw",)
BOTH = ("image", "raw")


@pytest.fixture
def cfg(tiny_kaggle, tmp_path):
    return hms_config(
        [
            f"data.data_dir={tiny_kaggle.root}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "preprocess.n_mels=8",
            "preprocess.n_frames=16",
        ]
    )


def test_the_key_follows_code_version_files_recipe_and_inputs(tiny_kaggle, cfg, monkeypatch):
    data = HMSDataset(tiny_kaggle.root, "train", cfg.preprocess)
    key = cache_key(data, cfg, BOTH)
    assert cache_key(data, cfg, BOTH) == key
    assert cache_key(data, cfg, RAW_ONLY) != key
    monkeypatch.setattr(cache_module, "PREPROCESS_VERSION", -1)  # a fix to preprocessing
    assert cache_key(data, cfg, BOTH) != key
    monkeypatch.undo()
    path = tiny_kaggle.eeg_path()
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a replaced EEG file
    assert cache_key(data, cfg, BOTH) != key
    changed = hms_config([f"data.cache_dir={cfg.data.cache_dir}", "preprocess.n_mels=9"])
    assert cache_key(data, changed, BOTH) != cache_key(data, cfg, BOTH)


def test_a_replaced_eeg_file_is_preprocessed_again(tiny_kaggle, cfg):
    data = HMSDataset(tiny_kaggle.root, "test", cfg.preprocess)
    before = open_cache(data, cfg, RAW_ONLY).batch(np.array([0]))["raw"]
    tiny_kaggle.write_eeg(2 * tiny_kaggle.eeg_signal(50, seed=3), "test")
    after = open_cache(HMSDataset(tiny_kaggle.root, "test", cfg.preprocess), cfg, RAW_ONLY).batch(
        np.array([0])
    )
    np.testing.assert_allclose(after["raw"], 2 * before, rtol=2e-3, atol=2e-3)


def test_a_wavenet_run_never_reads_the_spectrograms(tiny_kaggle, cfg):
    tiny_kaggle.spec_path("test").unlink()
    cache = open_cache(HMSDataset(tiny_kaggle.root, "test", cfg.preprocess), cfg, RAW_ONLY)
    assert cache.names == RAW_ONLY and cache.batch(np.array([0]))["raw"].shape[-1] == 16
    with pytest.raises(DataError, match=f"{tiny_kaggle.spec_path('test')}: file not found"):
        open_cache(HMSDataset(tiny_kaggle.root, "test", cfg.preprocess), cfg, BOTH)


def test_fallback_keeps_going_and_names_the_unreadable_eeg(tiny_kaggle, cfg, caplog):
    tiny_kaggle.eeg_path("test").write_text("eeg_id,Fp1\n1,2\n")  # CSV text named .parquet
    data = HMSDataset(tiny_kaggle.root, "test", cfg.preprocess)
    with caplog.at_level("WARNING"):
        cache = open_cache(data, cfg, BOTH, fallback=True)
    assert list(cache.failed) == [0]
    assert str(tiny_kaggle.eeg_path("test")) in cache.failed[0]
    assert str(tiny_kaggle.eeg_path("test")) in caplog.text
    assert not cache.batch(np.array([0]))["raw"].any()
    # The same cache opened strictly (predict.py without --fallback) is the error itself.
    with pytest.raises(DataError, match="not a parquet file"):
        open_cache(data, cfg, BOTH)
    assert not [p for p in cache.root.parent.iterdir() if ".partial" in p.name]


class OneBadRow:
    """A three-window source whose second window cannot be read; every input of a good row
    holds its row number + 1, so a zeroed input shows."""

    split, id_column = "test", "eeg_id"

    def __init__(self, root: Path) -> None:
        self.root, self.rows = root, pd.DataFrame({"eeg_id": [10, 11, 12]})

    def __len__(self) -> int:
        return len(self.rows)

    def inputs(self, rows, names, shifts=None) -> Batch:
        if 1 in list(rows):
            raise DataError(f"{self.root / '11.parquet'}: not a parquet file")
        return Batch(
            {n: np.stack([np.full((2, 3), r + 1.0, np.float32) for r in rows]) for n in names}
        )

    def blank_inputs(self, names) -> Batch:
        return Batch({n: np.zeros((1, 2, 3), np.float32) for n in names})

    def input_files(self, names) -> list[Path]:
        return []

    def source(self, unit) -> str:
        return str(self.root / f"{unit}.parquet")


def test_a_fallback_batch_keeps_every_input_of_the_good_rows(cfg, tmp_path):
    """preprocess.spectrogram=graph models read montage and kaggle inputs: one unreadable EEG
    in a batch must zero only its own inputs, never the good EEGs' (it once zeroed both)."""
    names = ("montage", "kaggle", "raw")
    cache = open_cache(OneBadRow(tmp_path), cfg, names, fallback=True)
    assert list(cache.failed) == [1] and "11.parquet" in cache.failed[1]
    batch = cache.batch(np.arange(3))
    for name in names:
        np.testing.assert_array_equal(batch[name][:, 0, 0], [1.0, 0.0, 3.0], err_msg=name)


class OneBuggyRow(OneBadRow):
    """The same three windows, but the second meets a bug (a TypeError), not bad input."""

    def inputs(self, rows, names, shifts=None) -> Batch:
        if 1 in list(rows):
            raise TypeError("planted bug")
        return super().inputs(rows, names, shifts)


def test_a_bug_is_never_a_fallback_unless_counted(cfg, tmp_path, caplog):
    """predict.py --fallback stops on a bug with its traceback; the notebook (count_bugs) gives
    that row the prior, logs the traceback and names it unexpected; and a cache whose build met
    a bug is built again, so a strict caller meets the bug itself."""
    data = OneBuggyRow(tmp_path)
    with pytest.raises(TypeError, match="planted bug"):
        open_cache(data, cfg, RAW_ONLY, fallback=True)
    with caplog.at_level("ERROR"):
        cache = open_cache(data, cfg, RAW_ONLY, fallback=True, count_bugs=True)
    assert cache.failed == {1: f"{tmp_path / '11.parquet'}: unexpected TypeError: planted bug"}
    [record] = [r for r in caplog.records if "UNEXPECTED ERROR" in r.getMessage()]
    assert record.exc_info is not None and "planted bug" in caplog.text
    np.testing.assert_array_equal(cache.batch(np.arange(3))["raw"][:, 0, 0], [1.0, 0.0, 3.0])
    with pytest.raises(TypeError, match="planted bug"):
        open_cache(data, cfg, RAW_ONLY, fallback=True)
