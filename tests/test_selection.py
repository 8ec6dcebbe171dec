"""Honest epoch selection on small data: with ``train.select_on=inner`` the epoch is picked on
a grouped split of the training folds, and the outer fold, which the CV reports, is scored
once; with ``last`` nothing is picked; ``auto`` keeps the last epoch below 2,000 units."""

from __future__ import annotations

import numpy as np
import pytest

from hmsbrain.config import ConfigError, load_config
from hmsbrain.core.predictions import read_predictions
from hmsbrain.training import setup as training_setup
from hmsbrain.training.loop import train_fold
from hmsbrain.training.setup import open_experiment, setup_fold

N_EPOCHS, RATE = 48, 64


@pytest.fixture
def arrays(tmp_path):
    """48 one-second epochs of 8 subjects; class 1 carries an 8 Hz rhythm."""
    rng = np.random.default_rng(0)
    y = np.arange(N_EPOCHS) % 2
    x = rng.standard_normal((N_EPOCHS, 2, RATE)) * 10
    x[y == 1] += 15 * np.sin(2 * np.pi * 8 * np.arange(RATE) / RATE)
    root = tmp_path / "arrays"
    root.mkdir()
    np.save(root / "X.npy", x.astype(np.float32))
    np.save(root / "y.npy", y)
    np.save(root / "groups.npy", np.repeat(np.arange(8), 6).astype(str))
    (root / "dataset.yaml").write_text(f"sample_rate: {RATE}\n")
    return root


def config(root, tmp_path, *overrides):
    return load_config(
        overrides=[
            f"data.data_dir={root}",
            f"data.cache_dir={tmp_path / 'cache'}",
            f"train.output_dir={tmp_path / 'outputs'}",
            "preprocess.sample_rate=64",
            "preprocess.bandpass_high=30",
            "preprocess.fmax=30",
            "folds.n_folds=4",
            "train.batch_size=8",
            *overrides,
        ]
    )


def test_inner_selection_units_come_from_the_training_folds_grouped(arrays, tmp_path):
    exp = open_experiment(config(arrays, tmp_path, "train.select_on=inner"))
    group = exp.rows.set_index("epoch")["group"]
    for fold in range(4):
        setup = setup_fold(exp, fold)
        assert setup.select_on == "inner"
        outer = set(setup.score.targets.index)
        select = set(setup.val.targets.index)
        trained = set(setup.stage1.unit_ids)
        assert outer == set(exp.rows.loc[exp.rows["fold"] == fold, "epoch"])
        assert select and trained and not (select & outer or select & trained or trained & outer)
        assert select | trained == set(exp.rows.loc[exp.rows["fold"] != fold, "epoch"])
        # Grouped like the outer split: no subject on both sides.
        assert not set(group[list(select)]) & set(group[list(trained)])


def test_outer_selection_picks_on_the_scored_fold(arrays, tmp_path):
    setup = setup_fold(open_experiment(config(arrays, tmp_path, "train.select_on=outer")), 0)
    assert setup.select_on == "outer" and setup.val is setup.score


def test_auto_keeps_the_last_epoch_on_small_data_only(arrays, tmp_path, monkeypatch):
    exp = open_experiment(config(arrays, tmp_path))
    assert setup_fold(exp, 0).select_on == "last"  # 48 units
    monkeypatch.setattr(training_setup, "SMALL_BELOW", 40)
    assert setup_fold(exp, 0).select_on == "outer"


def test_a_fitted_model_learns_from_every_training_fold(arrays, tmp_path):
    cfg = config(arrays, tmp_path, "train.select_on=inner", "model.backbone=bandpower")
    setup = setup_fold(open_experiment(cfg), 0)
    assert setup.select_on == "outer"


def test_inner_needs_two_groups_in_the_training_folds(tmp_path):
    root = tmp_path / "two"
    root.mkdir()
    np.save(root / "X.npy", np.random.default_rng(0).standard_normal((8, 2, RATE)).astype("f4"))
    np.save(root / "y.npy", np.arange(8) % 2)
    np.save(root / "groups.npy", np.repeat(["a", "b"], 4))
    (root / "dataset.yaml").write_text(f"sample_rate: {RATE}\n")
    exp = open_experiment(config(root, tmp_path, "train.select_on=inner", "folds.n_folds=2"))
    with pytest.raises(ConfigError, match=r"train\.select_on=inner needs at least 2"):
        setup_fold(exp, 0)


def test_the_outer_fold_is_scored_once_with_the_inner_pick(arrays, tmp_path):
    cfg = config(
        arrays, tmp_path, "train.select_on=inner", "model.backbone=shallow", "train.stage1_epochs=3"
    )
    summary = train_fold(cfg, fold=1)
    assert summary["select_on"] == "inner"
    oof = read_predictions(tmp_path / "outputs" / "shallow" / "fold1" / "oof.parquet").frame
    outer = open_experiment(cfg).rows.query("fold == 1")["epoch"].unique()
    assert sorted(oof["epoch"]) == sorted(outer) and summary["n_val_units"] == len(outer)
    assert summary["n_select_units"] > 0


def test_last_keeps_the_plans_last_epoch(arrays, tmp_path):
    cfg = config(
        arrays, tmp_path, "train.select_on=last", "model.backbone=shallow", "train.stage1_epochs=3"
    )
    summary = train_fold(cfg, fold=0)
    assert summary["select_on"] == "last" and summary["best_epoch"] == 3


def test_the_report_names_the_selection(arrays, tmp_path):
    from hmsbrain.inference.report import write_run_report
    from hmsbrain.training.loop import train_folds

    cfg = config(
        arrays, tmp_path, "model.backbone=shallow", "train.stage1_epochs=1", "train.select_on=inner"
    )
    train_folds(cfg, range(4))
    report = write_run_report(tmp_path / "outputs" / "shallow")
    assert {fold["select_on"] for fold in report["folds"]} == {"inner"}
    text = (tmp_path / "outputs" / "shallow" / "report.md").read_text()
    assert "Epoch selection: inner (on an inner split of the training folds" in text
