"""The recording store (data.storage=recordings): each recording once, windows cut at batch
time; its inputs are the per-window path's, exactly in float32 and at the noise floor in
float16; the spectrogram encoding is within its step; moved windows are true shifts."""

from __future__ import annotations

import numpy as np
import pytest

from hmsbrain.config import HMS_FULL_RECIPE, load_config, recipe_path
from hmsbrain.core.inputs import ALL_INPUTS
from hmsbrain.data.base import DataError
from hmsbrain.data.cache import StreamInputs
from hmsbrain.data.sources import open_dataset
from hmsbrain.dsp.filters import fill_nan
from hmsbrain.hms.layout import HMSData, read_eeg
from hmsbrain.hms.preprocess import bipolar_montage
from hmsbrain.hms.store import (
    decode_log_spectrogram,
    encode_log_spectrogram,
    open_store,
    store_bytes,
)


def _cfg(data_dir, tmp_path, *extra: str):
    return load_config(
        recipe_path(HMS_FULL_RECIPE),
        [
            f"data.data_dir={data_dir}",
            f"data.cache_dir={tmp_path / 'cache'}",
            *extra,
        ],
    )


def test_spectrogram_codes_round_trip_within_their_step() -> None:
    rng = np.random.default_rng(0)
    spec = rng.lognormal(1.0, 2.5, (50, 400)).astype(np.float32)
    spec[3, :10] = np.nan
    log = decode_log_spectrogram(encode_log_spectrogram(spec))
    expected = np.log(np.clip(spec, np.exp(-4.0), np.exp(8.0)))
    assert np.isnan(log[3, :10]).all() and np.isnan(log).sum() == 10
    assert np.nanmax(np.abs(log - expected)) <= 12 / 65534 / 2 + 1e-6


def test_store_inputs_equal_the_per_window_path_at_the_full_recipe(hms_sample_dir, tmp_path):
    """The 9 labelled windows of the real train EEG, full recipe (512 x 512 image with the
    Kaggle tiles, 2000 x 16 raw): float32 storage gives the per-window inputs within 1e-4."""
    per_window = open_dataset(_cfg(hms_sample_dir, tmp_path, "data.storage=windows"), "train")
    stored = open_dataset(
        _cfg(hms_sample_dir, tmp_path, "data.storage=recordings", "data.store_dtype=float32"),
        "train",
    )
    rows = np.arange(len(per_window))
    ref = per_window.inputs(rows, ALL_INPUTS)
    got = StreamInputs(stored, ALL_INPUTS).batch(rows)
    assert ref["image"].shape == got["image"].shape == (9, 512, 512, 3)
    for name in ALL_INPUTS:
        np.testing.assert_allclose(got[name], ref[name], atol=1e-4, err_msg=name)


def test_float16_store_moves_only_the_weak_bins(hms_sample_dir, tmp_path):
    """float16 keeps 11 bits of each sample: its rounding noise is white, so it shows in the
    weakest mel bins (the EEG's 1/f high end), as measured here on the real EEG: the bright
    half of the EEG tiles (within 20 dB of each window's peak) moves by < 1e-3, the average
    pixel by < 1e-4; the Kaggle tiles (16-bit log codes) by < 1e-4; the raw branch by < 1e-3
    of its scale."""
    per_window = open_dataset(_cfg(hms_sample_dir, tmp_path, "data.storage=windows"), "train")
    stored = open_dataset(_cfg(hms_sample_dir, tmp_path, "data.storage=recordings"), "train")
    rows = np.arange(len(per_window))
    ref = per_window.inputs(rows, ALL_INPUTS)
    got = stored.inputs(rows, ALL_INPUTS)
    gap = np.abs(got["image"] - ref["image"])[..., 0]
    eeg, kaggle = np.s_[:, :, :256], np.s_[:, :, 256:]
    assert gap[eeg][ref["image"][..., 0][eeg] > 0.5].max() < 1e-3
    assert gap[eeg].mean() < 1e-4
    assert gap[kaggle].max() < 1e-4
    raw_gap = np.abs(got["raw"] - ref["raw"]).max() / np.abs(ref["raw"]).max()
    assert raw_gap < 1e-3
    eeg = fill_nan(read_eeg(HMSData(hms_sample_dir).eeg_path(1628180742)))
    assert store_bytes(stored.store.root) < 0.6 * eeg.size * 4  # 16 of 20 channels, 2 bytes


def test_moved_windows_are_true_time_shifts(hms_sample_dir, tmp_path) -> None:
    data = HMSData(hms_sample_dir, "train")
    store = open_store(data, tmp_path, "float32", spectrograms=False)
    montage = bipolar_montage(fill_nan(read_eeg(data.eeg_path(1628180742))))
    for offset in (0.0, 6.0, 13.5, 40.0):
        start = round(offset * 200)
        np.testing.assert_array_equal(
            store.montage_window(1628180742, offset), montage[:, start : start + 10_000]
        )
    too_short = r"1628180742\.parquet: too short: the window at offset 41 s"
    with pytest.raises(DataError, match=too_short):
        store.montage_window(1628180742, 41.0)  # a 90 s recording ends at 40 + 50 s
    cfg = _cfg(
        hms_sample_dir,
        tmp_path,
        "data.storage=recordings",
        "data.store_dtype=float32",
        "preprocess.use_kaggle_spectrogram=false",
    )
    dataset = open_dataset(cfg, "train")
    row = int(np.flatnonzero(dataset.rows["eeg_label_offset_seconds"] == 6.0)[0])
    moved = dataset.inputs([row], ("raw",), shifts=np.array([4.0]))["raw"]
    at_ten = int(np.flatnonzero(dataset.rows["eeg_label_offset_seconds"] == 18.0)[0])
    table = dataset.data.rows  # the table windows are cut by
    table.loc[at_ten, "eeg_label_offset_seconds"] = 10.0  # a window at 6 + 4 s
    np.testing.assert_allclose(moved, dataset.inputs([at_ten], ("raw",))["raw"], atol=1e-5)
    beyond = dataset.inputs([row], ("raw",), shifts=np.array([1000.0]))["raw"]
    table.loc[at_ten, "eeg_label_offset_seconds"] = 40.0  # where the clipped shift ends
    np.testing.assert_allclose(beyond, dataset.inputs([at_ten], ("raw",))["raw"], atol=1e-5)


def test_a_bad_eeg_fails_the_store_or_is_named_in_fallback(tiny_kaggle, tmp_path) -> None:
    tiny_kaggle.eeg_path("test").write_text("not parquet")
    data = HMSData(tiny_kaggle.root, "test")
    with pytest.raises(DataError, match=str(tiny_kaggle.eeg_path("test"))):
        open_store(data, tmp_path, spectrograms=False)
    store = open_store(data, tmp_path, spectrograms=False, fallback=True)
    with pytest.raises(DataError, match=str(tiny_kaggle.eeg_path("test"))):
        store.montage_window(tiny_kaggle.test_eeg_id, 0.0)


@pytest.mark.slow
def test_training_streams_shifted_windows_from_the_store(small_demo, tmp_path) -> None:
    from hmsbrain.training.loop import train_fold
    from tests.conftest import tiny_config

    cfg = tiny_config(small_demo, tmp_path)
    cfg.data.storage, cfg.train.shift_seconds, cfg.train.workers = "recordings", 5.0, 2
    summary = train_fold(cfg, fold=0)
    assert np.isfinite(summary["cv_kl"]) and summary["n_val_units"] > 0
    assert list((tmp_path / "cache").glob("store-train-*/montage.npy"))
    assert not list((tmp_path / "cache").glob("inputs-train-*"))  # no per-window cache
