"""Which rows train (issue 20): vote thresholds per stage (``data.min_votes``), one unit per EEG
and vote pattern (``data.dedup``), loss weights by votes with a per-epoch decay of the low-vote
ones (``train.vote_weight``), and the second round on soft labels (``train.pseudo_from``), whose
pseudo targets must come from the one fold that held each EEG out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hmsbrain.config import ConfigError, TrainConfig, hms_config
from hmsbrain.core.predictions import write_predictions
from hmsbrain.hms.constants import VOTE_COLUMNS
from hmsbrain.hms.dataset import HMSDataset
from hmsbrain.hms.preprocess import HMS_MONTAGE
from hmsbrain.training.batches import EpochBatches, StageData
from hmsbrain.training.setup import open_experiment, setup_fold

VOTES = list(VOTE_COLUMNS)


class _Labels(HMSDataset):
    """The HMS dataset's labels of a vote table, without any file behind them."""

    def __init__(self, rows: pd.DataFrame) -> None:
        self.rows = rows


def _table(eeg_ids, votes) -> pd.DataFrame:
    return pd.DataFrame({"eeg_id": eeg_ids, **dict(zip(VOTES, np.asarray(votes).T, strict=True))})


def _check_dedup_units(stage: StageData, rows: pd.DataFrame) -> None:
    """No two units of one EEG share a vote pattern; every unit's rows share its pattern, its
    target is that pattern normalised and its votes are the pattern's total."""
    patterns = pd.DataFrame(
        [rows.loc[g[0], VOTES].to_numpy() for g in stage.row_groups], columns=VOTES
    )
    patterns.insert(0, "eeg_id", stage.unit_ids)
    assert not patterns.duplicated().any()
    for unit, group in enumerate(stage.row_groups):
        own = rows.loc[group, VOTES].to_numpy()
        assert (own == own[0]).all() and (rows.loc[group, "eeg_id"] == stage.unit_ids[unit]).all()
        np.testing.assert_allclose(stage.targets[unit], own[0] / own[0].sum(), rtol=1e-6)
        assert stage.votes[unit] == own[0].sum()
    assert sorted(np.concatenate(stage.row_groups)) == sorted(rows.index)


def test_dedup_makes_one_unit_per_eeg_and_vote_pattern() -> None:
    # EEG 1: two overlapping sub-windows with one pattern, one with another; EEG 2: one window.
    votes = [[3, 0, 0, 0, 0, 0], [3, 0, 0, 0, 0, 0], [0, 2, 0, 0, 0, 1], [0, 0, 5, 0, 0, 0]]
    rows = _table([1, 1, 1, 2], votes)
    rows.index += 50  # the rows of a fold are labels of the full table, as in training
    stage = StageData.from_rows(rows, _Labels(rows), dedup=True)
    assert list(stage.unit_ids) == [1, 1, 2]
    _check_dedup_units(stage, rows)
    # Without dedup: one unit per EEG, its target the sum of its sub-windows' votes.
    whole = StageData.from_rows(rows, _Labels(rows))
    assert list(whole.unit_ids) == [1, 2]
    np.testing.assert_allclose(whole.targets[0], np.array([6, 2, 0, 0, 0, 1]) / 9, rtol=1e-6)


def test_dedup_on_the_real_labels_keeps_about_the_3rd_places_rows(hms_labels_path) -> None:
    """3rd place trained on about 6,400 windows of >= 10 votes without overlapping duplicates."""
    rows = pd.read_parquet(hms_labels_path)
    stage = StageData.from_rows(rows, _Labels(rows), dedup=True)
    _check_dedup_units(stage, rows)
    assert len(stage.unit_ids) == 20_080  # of 106,519 rows and 17,001 EEGs
    assert int((stage.votes >= 10).sum()) == 6_313


def test_vote_weights_follow_the_votes_and_decay_the_low_vote_ones() -> None:
    votes = np.array([2.0, 5.0, 12.0, 20.0])
    class_weights = np.array([1.0, 2.0, 0.5, 0.5], np.float32)
    stage = StageData(
        np.arange(4), [np.array([i]) for i in range(4)], np.eye(6)[:4], class_weights, votes
    )
    cfg = TrainConfig(vote_weight=1.0, vote_weight_decay=0.5, low_votes=10)
    for epoch in range(4):
        expected = class_weights * votes * np.where(votes < 10, 0.5**epoch, 1.0)
        np.testing.assert_allclose(
            stage.epoch_weights(cfg, epoch), expected / expected.mean(), rtol=1e-6
        )
    sqrt = TrainConfig(vote_weight=0.5)
    expected = class_weights * np.sqrt(votes)
    np.testing.assert_allclose(stage.epoch_weights(sqrt, 3), expected / expected.mean(), rtol=1e-6)
    assert (
        StageData(stage.unit_ids, stage.row_groups, stage.targets).epoch_weights(TrainConfig(), 3)
        is None
    )  # nothing weighs: Keras gets no sample weights


class _RowIndexCache:
    """A stand-in input cache whose 'raw' input of a row is the row's own index."""

    def batch(self, rows: np.ndarray, shifts: np.ndarray | None = None) -> dict[str, np.ndarray]:
        return {"raw": np.asarray(rows, np.float32).reshape(-1, 1, 1)}


def test_every_batch_weighs_each_row_by_its_units_votes_of_that_epoch() -> None:
    votes = np.array([1, 4, 10, 16, 3])
    rows = _table(np.arange(5) + 100, np.outer(votes, [1, 0, 0, 0, 0, 0]))
    stage = StageData.from_rows(rows, _Labels(rows))
    cfg = TrainConfig(
        batch_size=2,
        min_steps_per_epoch=0,  # each unit once
        swap_prob=0.0,
        mixup_prob=0.0,
        vote_weight=1.0,
        vote_weight_decay=0.3,
    )
    epoch = 2
    expected = votes * np.where(votes < cfg.low_votes, 0.3**epoch, 1.0)
    expected = expected / expected.mean()
    batches = EpochBatches(
        stage, _RowIndexCache(), ("raw",), cfg, [1, 2, 3], HMS_MONTAGE, epoch=epoch
    )
    seen = 0
    for i in range(len(batches)):
        (raw,), _, weights = batches[i]
        for row, weight in zip(raw[:, 0, 0].astype(int), weights, strict=True):
            assert weight == pytest.approx(expected[row], rel=1e-6), f"row {row}"
            seen += 1
    assert seen == 5


def test_the_selection_keys_are_checked_when_the_config_is_read() -> None:
    with pytest.raises(ConfigError, match=r"train\.stage2_min_votes is now data\.min_votes"):
        hms_config(["train.stage2_min_votes=10"])
    for bad, key in (
        ("data.min_votes=[0, 10, 20]", "data.min_votes"),
        ("data.min_votes=[-1]", "data.min_votes"),
        ("train.vote_weight=-1", "train.vote_weight"),
        ("train.vote_weight_decay=0", "train.vote_weight_decay"),
        ("train.pseudo_mix=1.5", "train.pseudo_mix"),
    ):
        with pytest.raises(ConfigError, match=key):
            hms_config([bad])


def _config(demo: Path, tmp_path: Path, *overrides: str):
    return hms_config(
        [
            f"data.data_dir={demo}",
            f"data.cache_dir={tmp_path / 'cache'}",
            f"train.output_dir={tmp_path / 'outputs'}",
            "folds.n_folds=3",
            "train.batch_size=2",
            *overrides,
        ]
    )


def test_each_stage_trains_on_its_threshold_and_the_summary_says_so(small_demo, tmp_path) -> None:
    cfg = _config(small_demo, tmp_path, "data.min_votes=[3, 10]", "data.dedup=true")
    exp = open_experiment(cfg)
    setup = setup_fold(exp, 0)
    fit = exp.rows[exp.rows["fold"] != 0]
    totals = fit[VOTES].sum(axis=1)
    for stage, low, key in ((setup.stage1, 3, "stage1"), (setup.stage2, 10, "stage2")):
        kept = np.concatenate(stage.row_groups)
        assert set(kept) == set(fit.index[totals >= low])
        assert setup.training[key] == {
            "rows": len(kept),
            "units": len(stage.unit_ids),
            "min_votes": low,
            "low_vote_units": int((stage.votes < 10).sum()),
        }
        _check_dedup_units(stage, exp.rows.loc[kept])
    assert "with >= 3 votes" in setup.training["rule"]
    assert "one per eeg_id and vote pattern" in setup.training["rule"]
    with pytest.raises(ConfigError, match=r"data\.min_votes: no training row of fold 0"):
        setup_fold(open_experiment(_config(small_demo, tmp_path, "data.min_votes=[1000]")), 0)


# --- The second round on soft labels ---------------------------------------------------------


def _first_round(exp, root: Path, folds: pd.DataFrame | None = None) -> pd.DataFrame:
    """A finished run's folder: per fold, an OOF file of the EEGs that fold held out (random
    distributions, different in every fold), and a decoy train.parquet (predict.py --split
    train: every fold's models averaged, which trained on most of these EEGs). Returns the OOF."""
    rng = np.random.default_rng(3)
    folds = exp.rows.groupby("eeg_id")["fold"].first() if folds is None else folds
    parts = []
    for k in sorted(folds.unique()):
        ids = folds.index[folds == k].to_numpy()
        frame = pd.DataFrame(rng.dirichlet(np.ones(6), len(ids)), columns=VOTES)
        frame.insert(0, "eeg_id", ids)
        frame.insert(1, "fold", k)
        fold_dir = root / f"fold{k}"
        fold_dir.mkdir(parents=True)
        (fold_dir / "model.keras").touch()  # a trained fold, as runs.fold_dirs finds them
        write_predictions(frame, fold_dir / "oof.parquet", {"kind": "oof", "fold": int(k)})
        parts.append(frame)
    oof = pd.concat(parts, ignore_index=True)
    decoy = oof.assign(fold=-1, **{c: 1 / 6 for c in VOTES})
    write_predictions(decoy, root / "train.parquet", {"kind": "train"})
    return oof.set_index("eeg_id")


def test_a_pseudo_target_comes_only_from_the_fold_that_held_its_eeg_out(
    small_demo, tmp_path
) -> None:
    plain = open_experiment(_config(small_demo, tmp_path))
    oof = _first_round(plain, tmp_path / "round1")
    mix, low_votes = 0.25, 4
    cfg = _config(
        small_demo,
        tmp_path,
        f"train.pseudo_from={tmp_path / 'round1'}",
        f"train.pseudo_mix={mix}",
        f"train.low_votes={low_votes}",
        "data.min_votes=[0, 3]",
        "data.dedup=true",
    )
    exp = open_experiment(cfg)
    for fold in range(3):
        setup, before = setup_fold(exp, fold), setup_fold(plain, fold)
        relabelled = 0
        for stage, votes_only in ((setup.stage1, before.stage1), (setup.stage2, before.stage2)):
            # Dedup groups differently from the plain experiment: recompute the vote targets.
            assert stage is not None and votes_only is not None
            for unit, eeg in enumerate(stage.unit_ids):
                own = exp.rows.loc[stage.row_groups[unit][0], VOTES].to_numpy(np.float64)
                votes = own / own.sum()
                expected = votes
                if stage.votes[unit] < low_votes:
                    held_out = oof.loc[eeg]
                    assert held_out["fold"] != fold  # a training EEG: another fold held it out
                    expected = mix * votes + (1 - mix) * held_out[VOTES].to_numpy(np.float64)
                    relabelled += 1
                np.testing.assert_allclose(stage.targets[unit], expected, rtol=1e-5, atol=1e-7)
        assert relabelled > 0
        # The validation fold keeps its votes; the CV is scored against them.
        pd.testing.assert_frame_equal(setup.score.targets, before.score.targets)
        assert setup.training["pseudo_mix"] == mix
        assert f"the OOF of {tmp_path / 'round1'}" in setup.training["rule"]


def test_a_first_round_split_otherwise_is_refused(small_demo, tmp_path) -> None:
    plain = open_experiment(_config(small_demo, tmp_path))
    folds = plain.rows.groupby("eeg_id")["fold"].first()
    other = (folds + 1) % 3  # every EEG held out by another fold than the current one
    _first_round(plain, tmp_path / "moved", other)
    with pytest.raises(ConfigError, match="its folds differ from the current folds file"):
        open_experiment(_config(small_demo, tmp_path, f"train.pseudo_from={tmp_path / 'moved'}"))
    _first_round(plain, tmp_path / "part", folds[folds != 2])  # fold 2 never trained
    with pytest.raises(ConfigError, match="no OOF prediction for"):
        open_experiment(_config(small_demo, tmp_path, f"train.pseudo_from={tmp_path / 'part'}"))
