"""Training on tiny shapes: outputs and their schema, resume, the LR plan, augmentation and the
clear failure on a dataset that cannot be split by patient."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from hmsbrain.cli import train_main
from hmsbrain.config import TrainConfig, load_config
from hmsbrain.core.mirror import mirror_image
from hmsbrain.hms.constants import VOTE_COLUMNS
from hmsbrain.hms.dataset import eeg_targets, eeg_vote_counts
from hmsbrain.hms.preprocess import HMS_MONTAGE
from hmsbrain.training import loop as training
from hmsbrain.training.batches import EpochBatches, StageData, augment
from hmsbrain.training.loop import train_fold
from hmsbrain.training.outputs import RunConfigError, RunExistsError
from hmsbrain.training.schedule import Plan
from hmsbrain.training.validation import Validation
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
    assert set(oof["eeg_id"]) == set(folds.loc[folds["fold"] == 1, "id"])  # one row per EEG
    assert oof["eeg_id"].is_unique
    np.testing.assert_allclose(oof[list(VOTE_COLUMNS)].sum(axis=1), 1.0, atol=1e-5)
    history = pd.read_csv(run / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3]
    assert list(history["stage"]) == [1, 1, 2]
    assert {"train_loss", "val_kl", "val_kl_selected", "lr"} <= set(history.columns)
    assert load_config(run / "config.yaml") == cfg  # the resolved config reproduces the run
    assert summary["cv_kl"] == pytest.approx(history["val_kl"].min(), rel=1e-4)
    saved = json.loads((run / "summary.json").read_text())
    assert saved["class_prior_kl"] > 0 and sum(saved["class_prior"]) == pytest.approx(1.0)
    assert saved["tta"] is True and saved["select_min_votes"] == 0
    assert saved["cv_kl_selected"] == pytest.approx(saved["cv_kl"])  # the subset is every EEG
    with pytest.raises(RunExistsError, match="--resume"):  # finished work is never overwritten
        train_fold(cfg, fold=1)


@pytest.mark.slow
def test_a_short_run_learns_far_beyond_the_class_prior(learnable_demo, tmp_path) -> None:
    """20 s of WaveNet training must bring the CV well below the class prior on the same
    validation EEGs. Checked by hand: with the targets shuffled against the inputs this run's
    CV is 0.94 of the prior (epoch selection alone buys a little), with them aligned 0.68."""
    cfg = tiny_config(learnable_demo, tmp_path, backbone="wavenet")
    for key, value in {
        "stage1_epochs": 10,
        "stage2_epochs": 0,
        "lr": 3e-3,
        "samples_per_eeg": 3,
    }.items():
        setattr(cfg.train, key, value)
    cfg.model.wavenet.filters, cfg.model.wavenet.blocks = 16, 3
    cfg.model.wavenet.dilations, cfg.model.bn_momentum = [1, 2, 4, 8], 0.9
    summary = train_fold(cfg, fold=0)
    assert summary["n_val_units"] >= 20
    assert summary["cv_kl"] < 0.8 * summary["class_prior_kl"], summary


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
    changed = tiny_config(small_demo, tmp_path, backbone="wavenet")
    changed.train.lr = 0.05
    with pytest.raises(RunConfigError, match=r"train\.lr: 0\.001 -> 0\.05"):
        train_fold(changed, fold=0, resume=True)  # a changed recipe is never silently resumed
    monkeypatch.setattr(training, "predict_rows", real_predict)
    train_fold(cfg, fold=0, resume=True)
    assert "Resuming" in capsys.readouterr().out
    history = pd.read_csv(state_path.parents[1] / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3]  # epoch 1 was not trained again
    assert history["val_kl"].iloc[0] == pytest.approx(first["history"][0]["val_kl"])


def test_single_patient_data_fails_with_a_clear_message(hms_sample_dir, tmp_path, capsys) -> None:
    """The real sample is one patient: patient-grouped folds are impossible, say so cleanly."""
    with pytest.raises(SystemExit) as exit_info:
        train_main(
            [
                "--data-dir",
                str(hms_sample_dir),
                f"data.cache_dir={tmp_path}",
                f"train.output_dir={tmp_path}",
            ]
        )
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
    assert lrs[0] == pytest.approx(1e-4)  # warm-up over 10% of stage 1, never a zero step
    assert all(a < b for a, b in itertools.pairwise(lrs[:11]))
    assert lrs[10] == pytest.approx(1e-3)  # the peak
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:100]))  # cosine decay
    assert lrs[55] == pytest.approx(1e-6 + 0.5 * (1e-3 - 1e-6))  # half-way down the cosine
    assert lrs[99] == pytest.approx(1e-6, abs=1e-6)
    assert lrs[100] == pytest.approx(3e-4)  # stage 2 restarts at the scaled peak
    assert lrs[119] == pytest.approx(1e-6, abs=2e-6)
    assert plan.stage(9) == 1 and plan.stage(10) == 2


def test_augment_swaps_image_and_raw_together() -> None:
    rng = np.random.default_rng(0)
    image = rng.standard_normal((3, 16, 8, 3)).astype(np.float32)
    raw = rng.standard_normal((3, 20, 16)).astype(np.float32)
    cfg = TrainConfig(swap_prob=1.0, time_masks=0, freq_masks=0, mixup_prob=0.0)
    out, targets = augment(
        {"image": image.copy(), "raw": raw.copy()}, np.eye(6)[:3], rng, cfg, HMS_MONTAGE
    )
    np.testing.assert_array_equal(out["image"], mirror_image(image, HMS_MONTAGE.group_mirror))
    np.testing.assert_array_equal(out["raw"], raw[..., HMS_MONTAGE.mirror])
    np.testing.assert_array_equal(targets, np.eye(6)[:3])


def test_mixup_and_masks_keep_targets_distributions() -> None:
    rng = np.random.default_rng(1)
    image = rng.standard_normal((8, 16, 8, 3)).astype(np.float32)
    targets = rng.dirichlet(np.ones(6), 8)
    cfg = TrainConfig(swap_prob=0.0, mixup_prob=1.0, mixup_alpha=0.4, time_masks=2, freq_masks=2)
    out, mixed = augment({"image": image.copy()}, targets.copy(), rng, cfg, HMS_MONTAGE)
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0)
    assert not np.allclose(mixed, targets)
    assert out["image"].shape == image.shape


class _VotesOnly:
    """The HMS dataset's per-EEG targets and votes, without any file behind them."""

    id_column, classes, hard = "eeg_id", VOTE_COLUMNS, False
    unit_targets = staticmethod(eeg_targets)
    unit_votes = staticmethod(eeg_vote_counts)


class _RowIndexCache:
    """A stand-in input cache whose 'raw' input of a row is the row's own index."""

    def batch(self, rows: np.ndarray, shifts: np.ndarray | None = None) -> dict[str, np.ndarray]:
        return {"raw": np.asarray(rows, np.float32).reshape(-1, 1, 1)}


def test_every_batch_pairs_each_row_with_its_own_eegs_target() -> None:
    rng = np.random.default_rng(0)
    eeg_ids = np.repeat(np.arange(100, 113), rng.integers(1, 5, 13))
    votes = rng.integers(0, 4, (len(eeg_ids), 6))
    votes[:, 0] += 1
    table = pd.DataFrame({"eeg_id": eeg_ids, **dict(zip(VOTE_COLUMNS, votes.T, strict=True))})
    table.index += 1000  # stage rows are labels of the full table, as in training
    train = table[table["eeg_id"] != 105]  # a fold's training rows: not contiguous
    stage = StageData.from_rows(train, _VotesOnly())
    expected = eeg_targets(train)
    cfg = TrainConfig(
        batch_size=5,
        samples_per_eeg=3,
        min_steps_per_epoch=0,
        swap_prob=0.0,
        time_masks=0,
        freq_masks=0,
        mixup_prob=0.0,
    )
    batches = EpochBatches(stage, _RowIndexCache(), ("raw",), cfg, [1, 2, 3], HMS_MONTAGE)
    seen = []
    for i in range(len(batches)):
        (raw,), targets = batches[i]
        for row, target in zip(raw[:, 0, 0].astype(int), targets, strict=True):
            eeg = table.loc[row, "eeg_id"]
            np.testing.assert_allclose(target, expected.loc[eeg], err_msg=f"row {row}")
            seen.append(eeg)
    counts = pd.Series(seen).value_counts()
    assert set(counts.index) == set(train["eeg_id"]) and (counts == 3).all()


def test_small_stages_draw_each_unit_until_an_epoch_has_its_minimum_of_steps() -> None:
    """30 units in batches of 32 make one step per epoch; with a floor of 20 steps every unit
    is drawn 22 times (ceil(20 * 32 / 30)), each draw a row of its own; a large stage keeps
    samples_per_eeg."""
    rows = pd.DataFrame({"eeg_id": np.arange(30), **{c: 1 for c in VOTE_COLUMNS}})
    stage = StageData.from_rows(rows, _VotesOnly())
    cfg = TrainConfig(batch_size=32, samples_per_eeg=1, min_steps_per_epoch=20)
    assert stage.draws_per_unit(cfg) == 22 and stage.steps(cfg) == 21
    batches = EpochBatches(stage, _RowIndexCache(), ("raw",), cfg, [0, 0, 0], HMS_MONTAGE)
    assert len(batches) == 21 and (np.bincount(batches.order) == 22).all()
    assert stage.draws_per_unit(TrainConfig(batch_size=32, min_steps_per_epoch=0)) == 1
    big = StageData.from_rows(
        pd.concat([rows] * 40, ignore_index=True).assign(eeg_id=np.arange(1200)), _VotesOnly()
    )
    assert big.draws_per_unit(TrainConfig(batch_size=32, samples_per_eeg=2)) == 2


def test_validation_scores_every_eeg_and_the_selection_subset() -> None:
    votes = np.array([[12, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 1], [0, 0, 9, 3, 0, 0]])
    rows = pd.DataFrame({"eeg_id": [7, 8, 9], **dict(zip(VOTE_COLUMNS, votes.T, strict=True))})
    prior = np.full(6, 1 / 6)
    val = Validation.of(rows, _VotesOnly(), prior, min_votes=10, fold=0)
    np.testing.assert_array_equal(val.selected, [True, False, True])
    oof = val.oof(np.tile([0.5, 0.1, 0.1, 0.1, 0.1, 0.1], (3, 1)))
    scores = val.scores(oof)
    kl_all, kl_sel = scores["kl"], scores["kl_selected"]
    per_eeg = [
        np.log(1 / 0.5),
        0.5 * np.log(0.5 / 0.1) * 2,
        0.75 * np.log(7.5) + 0.25 * np.log(2.5),
    ]
    assert kl_all == pytest.approx(np.mean(per_eeg))
    assert kl_sel == pytest.approx(np.mean([per_eeg[0], per_eeg[2]]))
    with pytest.raises(ValueError, match="select_min_votes=20 leaves none of fold 0's 3"):
        Validation.of(rows, _VotesOnly(), prior, min_votes=20, fold=0)


def test_the_class_prior_baseline_is_the_training_folds_mean_target_everywhere() -> None:
    """What each fold's CV is reported beside (Validation.prior_oof, scored like any OOF): the
    training folds' mean target for every validation EEG, never the validation units' own."""
    votes = np.array([[3, 0, 0, 0, 0, 0], [0, 3, 0, 0, 0, 0]])
    rows = pd.DataFrame({"eeg_id": [7, 8], **dict(zip(VOTE_COLUMNS, votes.T, strict=True))})
    prior = np.array([0.25, 0.75, 0, 0, 0, 0])  # from other (training) folds
    val = Validation.of(rows, _VotesOnly(), prior, min_votes=0, fold=0)
    oof = val.prior_oof()
    np.testing.assert_array_equal(oof["eeg_id"], [7, 8])
    np.testing.assert_allclose(oof[list(VOTE_COLUMNS)], [prior, prior])
    # One-hot targets: ln(1 / 0.25) for EEG 7, ln(1 / 0.75) for EEG 8.
    assert val.scores(oof)["kl"] == pytest.approx((np.log(4) + np.log(4 / 3)) / 2, rel=1e-12)


def test_a_bad_config_key_is_a_one_line_error(capsys) -> None:
    """Before the model code is even imported: the CLI's error path must not itself crash."""
    with pytest.raises(SystemExit) as exit_info:
        train_main(["train.no_such_key=1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: unknown config key 'train.no_such_key'")
    assert "Traceback" not in "\n".join(err)
