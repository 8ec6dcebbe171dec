"""Prediction with a trained run: deterministic, TTA, the OOF schema, and a real submission for
the competition's own test EEG."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hmsbrain.cli import ensemble_main
from hmsbrain.core.mirror import swap_batch
from hmsbrain.core.predictions import FOLD_AVERAGE, read_predictions
from hmsbrain.hms.constants import VOTE_COLUMNS
from hmsbrain.hms.preprocess import HMS_MONTAGE
from hmsbrain.inference.predict import predict_run

OOF_COLUMNS = ["eeg_id", "fold", *VOTE_COLUMNS]


def test_tta_swap_is_its_own_inverse() -> None:
    rng = np.random.default_rng(0)
    batch = {"image": rng.standard_normal((2, 16, 8, 3)), "raw": rng.standard_normal((2, 30, 16))}
    twice = swap_batch(swap_batch(batch, HMS_MONTAGE), HMS_MONTAGE)
    for key in batch:
        np.testing.assert_array_equal(twice[key], batch[key])
    assert not np.array_equal(swap_batch(batch, HMS_MONTAGE)["raw"], batch["raw"])


@pytest.mark.slow
def test_predict_is_deterministic_and_in_the_oof_schema(tiny_run, small_demo) -> None:
    first = predict_run(tiny_run.run_dir, str(small_demo), "test").frame
    second = predict_run(tiny_run.run_dir, str(small_demo), "test").frame
    pd.testing.assert_frame_equal(first, second)
    saved = pd.read_parquet(tiny_run.run_dir / "test.parquet")
    assert read_predictions(tiny_run.run_dir / "test.parquet").meta["tta"] is True  # the run's
    assert list(saved.columns) == OOF_COLUMNS
    assert (saved["fold"] == FOLD_AVERAGE).all()
    test_ids = pd.read_csv(small_demo / "test.csv")["eeg_id"]
    assert sorted(saved["eeg_id"]) == sorted(test_ids)
    np.testing.assert_allclose(saved[list(VOTE_COLUMNS)].sum(axis=1), 1.0, atol=1e-6)
    no_tta = predict_run(tiny_run.run_dir, str(small_demo), "test", tta=False, write=False).frame
    assert not np.allclose(no_tta[list(VOTE_COLUMNS)], first[list(VOTE_COLUMNS)])


@pytest.mark.slow
def test_oof_is_predicted_the_way_the_test_is(tiny_run, small_demo) -> None:
    """The OOF file of a fold equals predict.py's output for the same EEGs with the same model:
    same TTA (the run's train.tta), same sub-window averaging, recorded in both files."""
    oof = read_predictions(tiny_run.run_dir / "fold1" / "oof.parquet")
    assert oof.meta["tta"] is True and oof.meta["kind"] == "oof"
    predicted = predict_run(
        tiny_run.run_dir, str(small_demo), "train", runtime="keras", write=False
    )
    assert predicted.meta["tta"] is True
    same = predicted.frame.set_index("eeg_id").loc[oof.frame["eeg_id"], list(VOTE_COLUMNS)]
    np.testing.assert_allclose(same.to_numpy(), oof.frame[list(VOTE_COLUMNS)], atol=1e-5)


@pytest.mark.slow
def test_real_test_eeg_gives_a_valid_one_row_submission(tiny_run, hms_sample_dir, tmp_path) -> None:
    """The competition's public test EEG, predicted by a demo-trained run, then ensembled."""
    predict_run(tiny_run.run_dir, str(hms_sample_dir), "test")
    ensemble_main([str(tiny_run.run_dir), "--name", "sample", "--out-dir", str(tmp_path)])
    sub = pd.read_csv(tmp_path / "sample.csv")
    official = pd.read_csv(hms_sample_dir / "sample_submission.csv")
    assert list(sub.columns) == list(official.columns)
    assert sub["eeg_id"].tolist() == [3911565283]
    assert sub[list(VOTE_COLUMNS)].sum(axis=1).iloc[0] == pytest.approx(1.0)
    report = json.loads((tmp_path / "sample.json").read_text())
    assert report["weights"] == {"effnetv2": 1.0}
