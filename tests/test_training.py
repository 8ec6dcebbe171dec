"""Training on tiny shapes: outputs and their schema, resume, the LR plan, augmentation and the
clear failure on a dataset that cannot be split by patient."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from hmsbrain import training
from hmsbrain.cli import train_main
from hmsbrain.config import TrainConfig, load_config
from hmsbrain.constants import VOTE_COLUMNS
from hmsbrain.metrics import eeg_targets
from hmsbrain.preprocess import MONTAGE_MIRROR, swap_hemispheres_image
from hmsbrain.training import Plan, RunExistsError, augment, train_fold
from tests.conftest import tiny_config

OOF_COLUMNS = ["eeg_id", "fold", *VOTE_COLUMNS]


@pytest.mark.slow
def test_short_run_writes_every_output(tiny_run) -> None:
    cfg, summary = tiny_run.cfg, tiny_run.summary
    tmp_path = tiny_run.tmp_path
    run = tmp_path / "outputs" / "effnetv2" / "fold1"  # run name defaults to the backbone
    for name in ("model.keras", "config.yaml", "history.csv", "curves.png", "oof.parquet"):
        assert (run / name).is_file(), name
    oof = pd.read_parquet(run / "oof.parquet")
    assert list(oof.columns) == OOF_COLUMNS
    assert (oof["fold"] == 1).all()
    folds = pd.read_csv(next((tmp_path / "cache").glob("folds-*.csv")))
    assert set(oof["eeg_id"]) == set(folds.loc[folds["fold"] == 1, "eeg_id"])  # one row per EEG
    assert oof["eeg_id"].is_unique
    np.testing.assert_allclose(oof[list(VOTE_COLUMNS)].sum(axis=1), 1.0, atol=1e-5)
    history = pd.read_csv(run / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3]
    assert list(history["stage"]) == [1, 1, 2]
    assert {"train_loss", "val_kl", "lr"} <= set(history.columns)
    assert load_config(run / "config.yaml") == cfg  # the resolved config reproduces the run
    assert summary["cv_kl"] == pytest.approx(history["val_kl"].min(), rel=1e-4)
    assert json.loads((run / "summary.json").read_text())["class_prior_kl"] > 0
    with pytest.raises(RunExistsError, match="--resume"):  # finished work is never overwritten
        train_fold(cfg, fold=1)


@pytest.mark.slow
def test_resume_continues_instead_of_restarting(small_demo, tmp_path, monkeypatch, capsys) -> None:
    cfg = tiny_config(small_demo, tmp_path, backbone="wavenet")
    real_predict = training.predict_rows
    calls = {"n": 0}

    def crash_on_second_validation(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the run dies during epoch 2
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(training, "predict_rows", crash_on_second_validation)
    with pytest.raises(KeyboardInterrupt):
        train_fold(cfg, fold=0)
    state_path = tmp_path / "outputs" / "wavenet" / "fold0" / "checkpoint" / "state.json"
    first = json.loads(state_path.read_text())
    assert first["epoch"] == 1
    with pytest.raises(RunExistsError):
        train_fold(cfg, fold=0)
    monkeypatch.setattr(training, "predict_rows", real_predict)
    train_fold(cfg, fold=0, resume=True)
    assert "Resuming" in capsys.readouterr().out
    history = pd.read_csv(state_path.parents[1] / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3]  # epoch 1 was not trained again
    assert history["val_kl"].iloc[0] == pytest.approx(first["history"][0]["val_kl"])


def test_single_patient_data_fails_with_a_clear_message(hms_sample_dir, tmp_path, capsys) -> None:
    """The real sample is one patient: patient-grouped folds are impossible, say so cleanly."""
    with pytest.raises(SystemExit) as exit_info:
        train_main([
            "--data-dir", str(hms_sample_dir), f"data.cache_dir={tmp_path}",
            f"train.output_dir={tmp_path}",
        ])  # fmt: skip
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "patients" in err and "Traceback" not in err


def test_eeg_target_is_the_normalised_sum_of_sub_window_votes() -> None:
    rows = pd.DataFrame({"eeg_id": [5, 5, 9], **{c: [0] * 3 for c in VOTE_COLUMNS}})
    rows.loc[0, "seizure_vote"], rows.loc[1, "seizure_vote"], rows.loc[1, "lpd_vote"] = 3, 1, 2
    rows.loc[2, "other_vote"] = 1
    target = eeg_targets(rows)
    np.testing.assert_allclose(target.loc[5], [4 / 6, 2 / 6, 0, 0, 0, 0])
    np.testing.assert_allclose(target.loc[9], [0, 0, 0, 0, 0, 1])


def test_lr_plan_warms_up_decays_and_restarts_lower() -> None:
    cfg = TrainConfig(lr=1e-3, min_lr=1e-6, warmup_frac=0.1, stage2_lr_scale=0.3)
    plan = Plan(stage1_epochs=10, stage2_epochs=5, stage1_steps=10, stage2_steps=4, cfg=cfg)
    lrs = [plan.lr(s) for s in range(100 + 20)]
    assert lrs[0] < lrs[9] == pytest.approx(1e-3)  # warm-up over 10% of stage 1
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:100]))  # cosine decay
    assert lrs[99] == pytest.approx(1e-6, abs=1e-6)
    assert lrs[100] == pytest.approx(3e-4)  # stage 2 restarts at the scaled peak
    assert plan.stage(9) == 1 and plan.stage(10) == 2


def test_augment_swaps_image_and_raw_together() -> None:
    rng = np.random.default_rng(0)
    image = rng.standard_normal((3, 16, 8, 3)).astype(np.float32)
    raw = rng.standard_normal((3, 20, 16)).astype(np.float32)
    cfg = TrainConfig(swap_prob=1.0, time_masks=0, freq_masks=0, mixup_prob=0.0)
    out, targets = augment({"image": image.copy(), "raw": raw.copy()}, np.eye(6)[:3], rng, cfg)
    np.testing.assert_array_equal(out["image"], swap_hemispheres_image(image, axis=-3))
    np.testing.assert_array_equal(out["raw"], raw[..., MONTAGE_MIRROR])
    np.testing.assert_array_equal(targets, np.eye(6)[:3])


def test_mixup_and_masks_keep_targets_distributions() -> None:
    rng = np.random.default_rng(1)
    image = rng.standard_normal((8, 16, 8, 3)).astype(np.float32)
    targets = rng.dirichlet(np.ones(6), 8)
    cfg = TrainConfig(swap_prob=0.0, mixup_prob=1.0, mixup_alpha=0.4, time_masks=2, freq_masks=2)
    out, mixed = augment({"image": image.copy()}, targets.copy(), rng, cfg)
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0)
    assert not np.allclose(mixed, targets)
    assert out["image"].shape == image.shape
