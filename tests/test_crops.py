"""Cropped training for long epochs: each epoch is cut into crops after filtering, training draws
crops, validation and prediction average an epoch's crops into one prediction per epoch, and
folds stay by epoch (no crop of a validation epoch is ever trained on)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hmsbrain.config import load_config
from hmsbrain.core.predictions import read_predictions
from hmsbrain.data.sources import open_dataset
from hmsbrain.dsp.pipeline import crop_grid
from hmsbrain.training.loop import train_fold
from hmsbrain.training.setup import open_experiment, setup_fold

RATE = 128
N_EPOCHS, N_CHANNELS, N_SAMPLES = 24, 3, 4 * RATE  # 4 s epochs


@pytest.fixture
def arrays(tmp_path):
    """24 epochs of 4 s in 6 subjects; class 1 carries a 10 Hz rhythm."""
    rng = np.random.default_rng(0)
    y = np.arange(N_EPOCHS) % 2
    t = np.arange(N_SAMPLES) / RATE
    x = rng.standard_normal((N_EPOCHS, N_CHANNELS, N_SAMPLES)) * 10
    x[y == 1] += 20 * np.sin(2 * np.pi * 10 * t)
    root = tmp_path / "arrays"
    root.mkdir()
    np.save(root / "X.npy", x.astype(np.float32))
    np.save(root / "y.npy", y)
    np.save(root / "groups.npy", np.repeat(np.arange(6), 4).astype(str))
    (root / "dataset.yaml").write_text(f"sample_rate: {RATE}\nunits: uV\n")
    return root


def config(root, tmp_path, *overrides):
    return load_config(
        overrides=[
            f"data.data_dir={root}",
            f"data.cache_dir={tmp_path / 'cache'}",
            f"train.output_dir={tmp_path / 'outputs'}",
            "preprocess.crop_seconds=2",
            "preprocess.crop_stride_seconds=0.5",
            "folds.n_folds=3",
            *overrides,
        ]
    )


def test_the_crop_grid_covers_the_epoch():
    starts, length = crop_grid(512, 128.0, 2.0, 0.5)
    np.testing.assert_array_equal(starts, [0, 64, 128, 192, 256])
    assert length == 256
    # A stride that does not divide the rest: the last crop still ends with the epoch.
    np.testing.assert_array_equal(crop_grid(500, 100.0, 2.0, 1.5)[0], [0, 150, 300])
    np.testing.assert_array_equal(crop_grid(400, 100.0, 2.0, 0.0)[0], [0, 50, 100, 150, 200])
    # A crop longer than the epoch is the whole epoch.
    np.testing.assert_array_equal(crop_grid(100, 100.0, 2.0, 0.5)[0], [0])
    assert crop_grid(100, 100.0, 2.0, 0.5)[1] == 100


def test_a_crop_is_the_clean_epoch_cut_after_filtering(arrays, tmp_path):
    whole = open_dataset(config(arrays, tmp_path, "preprocess.crop_seconds=0"), "train")
    cropped = open_dataset(config(arrays, tmp_path), "train")
    assert len(whole) == N_EPOCHS and len(cropped) == 5 * N_EPOCHS
    # Units are the epochs: one target per epoch, the same as without crops.
    pd.testing.assert_frame_equal(
        cropped.unit_targets(cropped.rows), whole.unit_targets(whole.rows)
    )
    row = 5 * 7 + 3  # epoch 7, crop 3: starts 1.5 s into it
    assert cropped.rows.loc[row, "epoch"] == whole.rows.loc[7, "epoch"]
    assert cropped.rows.loc[row, "crop_start"] == pytest.approx(1.5)
    raw = whole.inputs([7], ("raw",))["raw"][0]
    crop = cropped.inputs([row], ("raw",))["raw"][0]
    np.testing.assert_allclose(crop, raw[192 : 192 + 256], atol=1e-6)


def test_a_crop_longer_than_the_epoch_is_the_whole_epoch(arrays, tmp_path):
    whole = open_dataset(config(arrays, tmp_path, "preprocess.crop_seconds=0"), "train")
    long = open_dataset(config(arrays, tmp_path, "preprocess.crop_seconds=5"), "train")
    assert len(long) == N_EPOCHS
    np.testing.assert_allclose(
        long.inputs([3], ("raw",))["raw"], whole.inputs([3], ("raw",))["raw"], atol=1e-6
    )


def test_no_crop_of_a_validation_epoch_is_trained_on(arrays, tmp_path):
    exp = open_experiment(config(arrays, tmp_path))
    source = exp.data.epoch_of_row  # the epoch each crop was cut from
    for fold in range(3):
        setup = setup_fold(exp, fold)
        val_epochs = set(source[setup.val.rows.index])
        trained_epochs = set(source[np.concatenate(setup.stage1.row_groups)])
        assert val_epochs and not val_epochs & trained_epochs
        # Every crop of a validation epoch is validated, and scored as its epoch.
        assert set(setup.val.rows.index) == set(np.flatnonzero(np.isin(source, list(val_epochs))))
        assert len(setup.val.targets) == len(val_epochs)


def test_a_cropped_run_writes_one_prediction_per_epoch(arrays, tmp_path):
    cfg = config(arrays, tmp_path, "model.backbone=shallow", "train.stage1_epochs=2")
    summary = train_fold(cfg, fold=0)
    oof = read_predictions(tmp_path / "outputs" / "shallow" / "fold0" / "oof.parquet").frame
    assert len(oof) == summary["n_val_units"] == oof["epoch"].nunique() == N_EPOCHS // 3
    np.testing.assert_allclose(oof[["0", "1"]].sum(axis=1), 1.0, atol=1e-6)
