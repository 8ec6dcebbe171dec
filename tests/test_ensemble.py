"""Blending from OOF files: weights recover a known optimum, the blend CV is nested (fitted on the
other folds only) and exposes an overfitted blend, the selection subset fits the weights, and
runs predicted differently (TTA, folds) are refused."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pandas as pd
import pytest
import scipy.optimize

from hmsbrain.core.metrics import kl_score
from hmsbrain.core.predictions import write_predictions
from hmsbrain.core.truth import Truth
from hmsbrain.data import sources
from hmsbrain.data.dataset import EpochDataset
from hmsbrain.hms.constants import VOTE_COLUMNS
from hmsbrain.hms.dataset import HMSDataset, eeg_targets, eeg_vote_counts
from hmsbrain.inference import ensemble as ensemble_module
from hmsbrain.inference.ensemble import (
    EnsembleError,
    RunPredictions,
    blend,
    blend_ran,
    ensemble,
    fit_blend,
    fit_weights,
    load_run,
    truth_of_run,
)
from hmsbrain.inference.report import write_run_report


def _frame(ids, probs, fold=0) -> pd.DataFrame:
    frame = pd.DataFrame(probs, columns=list(VOTE_COLUMNS))
    frame.insert(0, "eeg_id", ids)
    frame.insert(1, "fold", fold)
    return frame


def _rows(ids, votes) -> Truth:
    """HMS vote labels as the ensemble sees them: one EEG per id, its targets and votes."""
    rows = pd.DataFrame({"eeg_id": ids, **dict(zip(VOTE_COLUMNS, votes.T, strict=True))})
    groups = pd.Series(ids, index=pd.Index(ids, name="eeg_id"))
    return Truth(eeg_targets(rows), eeg_vote_counts(rows), groups, False, "unused")


def _dataset(n: int, seed: int, total_votes: int = 5):
    rng = np.random.default_rng(seed)
    ids = np.arange(1000, 1000 + n)
    votes = rng.multinomial(total_votes, [0.3, 0.2, 0.1, 0.1, 0.1, 0.2], n)
    return rng, ids, votes, votes / votes.sum(axis=1, keepdims=True)


def test_weights_recover_a_known_optimum() -> None:
    """If the target is exactly 0.7 * A + 0.3 * B, the fitted weights are (0.7, 0.3, 0)."""
    rng = np.random.default_rng(0)
    a, b, c = (rng.dirichlet(np.ones(6), 400) for _ in range(3))
    target = 0.7 * a + 0.3 * b
    w = fit_weights([a, b, c], target, "linear")
    np.testing.assert_allclose(w, [0.7, 0.3, 0.0], atol=0.02)
    assert w.min() >= 0 and w.sum() == pytest.approx(1.0)


def test_a_failed_weight_fit_is_an_error_not_a_silent_result(monkeypatch) -> None:
    rng = np.random.default_rng(0)
    preds = [rng.dirichlet(np.ones(6), 20) for _ in range(2)]
    failed = scipy.optimize.OptimizeResult(
        x=np.array([0.5, 0.5]), success=False, message="Iteration limit reached"
    )
    monkeypatch.setattr(scipy.optimize, "minimize", lambda *a, **k: failed)
    with pytest.raises(EnsembleError, match="Iteration limit reached"):
        fit_weights(preds, preds[0], "log")


def test_log_blend_is_a_normalised_geometric_mean() -> None:
    a = np.array([[0.5, 0.5, 0, 0, 0, 0.0]]) + 1e-9
    b = np.array([[0.2, 0.8, 0, 0, 0, 0.0]]) + 1e-9
    out = blend([a, b], np.array([0.5, 0.5]), "log")
    expected = np.sqrt(a * b)
    np.testing.assert_allclose(out, expected / expected.sum(), atol=1e-6)


def test_ensemble_blends_the_common_eegs_and_says_so() -> None:
    rng, ids, votes, truth = _dataset(60, seed=1)
    folds = np.arange(60) % 3
    noisy = [0.6 * truth + 0.4 * rng.dirichlet(np.ones(6), len(ids)) for _ in range(2)]
    test_a = _frame([1, 2], np.full((2, 6), 1 / 6), -1)
    test_b = _frame([1, 2], rng.dirichlet(np.ones(6), 2), -1)
    runs = [
        RunPredictions("a", _frame(ids, noisy[0], folds), test_a),
        # run b misses 10 EEGs: the blend must use the 50 both cover, and say so
        RunPredictions("b", _frame(ids[10:], noisy[1][10:], folds[10:]), test_b),
    ]
    result = ensemble(runs, _rows(ids, votes))
    assert any("different OOF units" in n for n in result.notes)
    assert list(result.table["units"]) == [60, 50, 50, 50]
    assert result.table["run"].iloc[-2].endswith("nested CV")
    assert result.table["run"].iloc[-1].endswith("in-sample")
    assert set(result.submission["eeg_id"]) == {1, 2}
    np.testing.assert_allclose(result.submission[list(VOTE_COLUMNS)].sum(axis=1), 1.0)
    singles = [kl_score(truth[10:], n[10:]) for n in noisy]
    assert result.best_single == pytest.approx(min(singles))


def test_nested_cv_fits_each_fold_on_the_other_folds_only() -> None:
    """The reported CV is exactly: per fold, method and weights fitted on the other folds'
    EEGs, applied to this fold; then the official KL over all EEGs."""
    rng, ids, votes, truth = _dataset(90, seed=2)
    folds = rng.permutation(np.arange(90) % 3)
    preds = [0.5 * truth + 0.5 * rng.dirichlet(np.ones(6) * s, 90) for s in (1.0, 3.0, 0.5)]
    runs = [
        RunPredictions(n, _frame(ids, p, folds), None) for n, p in zip("abc", preds, strict=True)
    ]
    result = ensemble(runs, _rows(ids, votes))
    expected = np.empty_like(truth)
    for k in range(3):
        fitted = fit_blend([p[folds != k] for p in preds], truth[folds != k])
        expected[folds == k] = fitted.apply([p[folds == k] for p in preds])
    assert result.cv == pytest.approx(kl_score(truth, expected), rel=1e-9)
    fitted = fit_blend(preds, truth)
    assert result.cv_in_sample == pytest.approx(kl_score(truth, fitted.apply(preds)))
    assert result.method == fitted.method
    np.testing.assert_allclose(list(result.weights.values()), fitted.weights)


def test_a_run_blended_with_its_baselines_is_scored_by_the_same_nested_cv() -> None:
    """``with_baselines``: the run's band-power and tangent-space OOF are members of the blend,
    whose CV is nested exactly as any blend's; they have no test predictions, so no submission
    is written. Without it, they are rows of the table and the run's test is the submission."""
    rng, ids, votes, truth = _dataset(90, seed=8)
    folds = rng.permutation(np.arange(90) % 3)
    preds = [0.5 * truth + 0.5 * rng.dirichlet(np.ones(6) * s, 90) for s in (1.0, 3.0, 0.5)]
    test = _frame([1, 2], rng.dirichlet(np.ones(6), 2), -1)
    baselines = {"bandpower": _frame(ids, preds[1], folds), "tangent": _frame(ids, preds[2], folds)}
    run = RunPredictions("a", _frame(ids, preds[0], folds), test, baselines=baselines)
    result = ensemble([run], _rows(ids, votes), with_baselines=True)
    expected = np.empty_like(truth)
    for k in range(3):
        fitted = fit_blend([p[folds != k] for p in preds], truth[folds != k])
        expected[folds == k] = fitted.apply([p[folds == k] for p in preds])
    assert result.cv == pytest.approx(kl_score(truth, expected), rel=1e-9)
    assert result.best_single == pytest.approx(min(kl_score(truth, p) for p in preds))
    assert list(result.weights) == [
        "a",
        "band-power baseline (a's folds)",
        "tangent-space baseline (a's folds)",
    ]
    assert result.submission is None
    assert any("no submission is written" in n for n in result.notes)
    alone = ensemble([run], _rows(ids, votes))
    assert alone.cv == pytest.approx(kl_score(truth, preds[0]))
    rows = alone.table.set_index("run")
    assert rows.loc["tangent-space baseline (a's folds)", "cv"] == pytest.approx(
        kl_score(truth, preds[2])
    )
    assert np.isnan(rows.loc["band-power baseline (a's folds)", "weight"])
    assert alone.submission is not None and len(alone.submission) == 2


def test_nested_cv_exposes_a_blend_that_only_fits_noise() -> None:
    """One run and twelve copies of it with random noise on 60 EEGs: the copies add no
    information, yet fitted on the EEGs it is scored on, the blend finds weights that fit their
    noise and look better than the run alone; scored out of sample, the blend is worse. A CV
    computed in sample would fail the second assertion."""
    rng, ids, votes, truth = _dataset(60, seed=3)
    folds = np.arange(60) % 5
    good = 0.5 * truth + 0.5 * rng.dirichlet(np.ones(6), 60)
    copies = [good * np.exp(0.3 * rng.standard_normal(good.shape)) for _ in range(12)]
    preds = [good] + [c / c.sum(axis=1, keepdims=True) for c in copies]
    runs = [RunPredictions(f"r{i}", _frame(ids, p, folds), None) for i, p in enumerate(preds)]
    result = ensemble(runs, _rows(ids, votes))
    assert result.cv_in_sample < result.best_single - 0.003  # the flattering figure
    assert result.cv > result.best_single  # what the blend is really worth


def test_blend_weights_are_fitted_on_the_selection_subset() -> None:
    """Run a is right on the EEGs with >= 10 votes and run b on the others: with
    train.select_min_votes = 10 the blend trusts a; with 0, both."""
    rng, ids, _, _ = _dataset(80, seed=4)
    high = np.arange(80) < 40
    votes = np.where(
        high[:, None],
        rng.multinomial(12, [0.5, 0.5, 0, 0, 0, 0], 80),
        rng.multinomial(3, [0, 0, 0.5, 0.5, 0, 0], 80),
    )
    truth = votes / votes.sum(axis=1, keepdims=True)
    noise = rng.dirichlet(np.ones(6), 80)
    a = np.where(high[:, None], 0.9 * truth + 0.1 * noise, noise)
    b = np.where(high[:, None], noise, 0.9 * truth + 0.1 * noise)
    folds = np.arange(80) % 4
    by_select = {}
    for select in (0, 10):
        runs = [
            RunPredictions(n, _frame(ids, p, folds), None, select_min_votes=select)
            for n, p in (("a", a), ("b", b))
        ]
        by_select[select] = ensemble(runs, _rows(ids, votes))
    assert by_select[10].weights["a"] > 0.9
    assert 0.2 < by_select[0].weights["a"] < 0.8
    assert by_select[10].cv_selected < by_select[0].cv_selected
    assert "cv_selected" in by_select[10].table.columns


def test_runs_predicted_differently_are_refused() -> None:
    _, ids, votes, truth = _dataset(30, seed=5)
    folds = np.arange(30) % 3
    a = RunPredictions("a", _frame(ids, truth, folds), None, tta=True)
    b = RunPredictions("b", _frame(ids, truth, folds), None, tta=False)
    with pytest.raises(EnsembleError, match=r"TTA .*a: True, b: False"):
        ensemble([a, b], _rows(ids, votes))
    c = RunPredictions("c", _frame(ids, truth, folds), None, select_min_votes=10)
    with pytest.raises(EnsembleError, match="select_min_votes"):
        ensemble([a, c], _rows(ids, votes))
    d = RunPredictions("d", _frame(ids, truth, (folds + 1) % 3), None)
    with pytest.raises(EnsembleError, match="different folds"):
        ensemble([a, d], _rows(ids, votes))


def test_a_truth_of_other_classes_is_refused() -> None:
    _, ids, votes, truth = _dataset(30, seed=5)
    run = RunPredictions("a", _frame(ids, truth, np.arange(30) % 3), None)
    other = _rows(ids, votes)
    other = dataclasses.replace(other, targets=other.targets.rename(columns={"other_vote": "x"}))
    with pytest.raises(EnsembleError, match=r"the runs predict classes .*other_vote.* has .*'x'"):
        ensemble([run], other)


def test_a_run_whose_test_tta_differs_from_its_oof_is_refused(tiny_run, tmp_path) -> None:
    run = tmp_path / "effnetv2"
    shutil.copytree(tiny_run.run_dir, run)
    oof = pd.read_parquet(run / "fold1" / "oof.parquet")
    test = _frame([5, 6], np.full((2, 6), 1 / 6), -1)
    write_predictions(test, run / "test.parquet", {"kind": "test", "tta": False})
    with pytest.raises(
        EnsembleError, match=r"OOF predicted with TTA on but test\.parquet with TTA off"
    ):
        load_run(run)
    write_predictions(test, run / "test.parquet", {"kind": "test", "tta": True})
    loaded = load_run(run)
    assert loaded.tta is True and len(loaded.oof) == len(oof)


def test_unreadable_test_eegs_get_the_ensembles_class_prior() -> None:
    rng, ids, votes, truth = _dataset(30, seed=6)
    folds = np.arange(30) % 3
    test = _frame([1, 2, 3], rng.dirichlet(np.ones(6), 3), -1)
    run = RunPredictions(
        "a",
        _frame(ids, truth, folds),
        test,
        test_info={"fallback": {"2": "x.parquet: file not found"}},
    )
    result = ensemble([run], _rows(ids, votes))
    sub = result.submission.set_index("eeg_id")
    np.testing.assert_allclose(sub.loc[2].to_numpy(), truth.mean(axis=0))
    np.testing.assert_allclose(sub.loc[1].to_numpy(), test.iloc[0, 2:].to_numpy().astype(float))
    assert result.fallback == {"2": "x.parquet: file not found"}


def test_a_run_no_runtime_could_run_is_left_out_of_the_test_blend() -> None:
    """Its test file is its class prior: blended at its weight, that prior would pull every
    EEG towards it. The others are blended alone, their weights renormalised; when no run ran,
    every EEG gets the ensemble's class prior."""
    rng, ids, votes, truth = _dataset(60, seed=8)
    folds = np.arange(60) % 3
    preds = [0.5 * truth + 0.5 * rng.dirichlet(np.ones(6), 60) for _ in range(2)]
    tests = [_frame([1, 2, 3], rng.dirichlet(np.ones(6), 3), -1) for _ in range(2)]
    tests[1][list(VOTE_COLUMNS)] = truth.mean(axis=0)  # what predict.py wrote for it
    info = [{}, {"no_runtime": "runtime auto: onnx: onnxruntime is not installed"}]
    runs = [
        RunPredictions(n, _frame(ids, p, folds), t, test_info=i)
        for n, p, t, i in zip("ab", preds, tests, info, strict=True)
    ]
    result = ensemble(runs, _rows(ids, votes), method="linear")
    assert min(result.weights.values()) > 0.05  # both count in the fitted blend
    np.testing.assert_allclose(
        result.submission[list(VOTE_COLUMNS)], tests[0][list(VOTE_COLUMNS)], atol=1e-12
    )
    assert any(
        n.startswith("left out of the test blend, no runtime could run them: b")
        for n in result.notes
    )
    assert result.fallback == {}
    runs[0].test_info = info[1]
    nothing = ensemble(runs, _rows(ids, votes), method="linear")
    np.testing.assert_allclose(nothing.submission[list(VOTE_COLUMNS)], [truth.mean(axis=0)] * 3)
    assert sorted(nothing.fallback) == [1, 2, 3]


def test_blend_ran_keeps_the_temperature_of_a_logit_bias_blend() -> None:
    """Renormalised to the sum of all weights: one for linear, the temperature for logit-bias."""
    rng = np.random.default_rng(9)
    frames = [_frame([1, 2], rng.dirichlet(np.ones(6), 2), -1) for _ in range(3)]
    bias = rng.standard_normal(6)
    weights = np.array([0.5, 0.3, 0.9])
    got = blend_ran(frames, list("abc"), weights, "logit-bias", bias, [True, False, True])
    scaled = np.array([0.5, 0.9]) * 1.7 / 1.4
    expected = blend(
        [frames[i][list(VOTE_COLUMNS)].to_numpy() for i in (0, 2)], scaled, "logit-bias", bias
    )
    np.testing.assert_allclose(got[list(VOTE_COLUMNS)], expected, rtol=1e-12)
    assert blend_ran(frames, list("abc"), weights, "linear", None, [False] * 3) is None


def test_cli_prints_nested_and_in_sample_and_reports_the_nested(monkeypatch, capsys) -> None:
    """ensemble.py's table names both figures; its JSON report's blend_cv is the nested one."""
    rng, ids, votes, truth = _dataset(60, seed=7)
    folds = np.arange(60) % 3
    preds = [0.5 * truth + 0.5 * rng.dirichlet(np.ones(6), 60) for _ in range(2)]
    runs = [
        RunPredictions(n, _frame(ids, p, folds), None) for n, p in zip("ab", preds, strict=True)
    ]
    result = ensemble(runs, _rows(ids, votes))
    assert result.cv != pytest.approx(result.cv_in_sample)
    monkeypatch.setattr(ensemble_module, "load_run", lambda r: runs["ab".index(str(r))])
    monkeypatch.setattr(ensemble_module, "truth_of_run", lambda r: _rows(ids, votes))
    from hmsbrain.cli import ensemble_main

    ensemble_main(["a", "b"])
    out = capsys.readouterr().out
    assert f"blend CV {result.cv:.4f} nested" in out
    assert f"{result.cv_in_sample:.4f} in-sample" in out


def test_the_ensemble_and_the_run_report_read_only_files(
    tiny_run, small_demo, tmp_path, monkeypatch, capsys
) -> None:
    """With the run's data folder gone and every way of opening a dataset failing, the ensemble
    (API and CLI) and the run report score the OOF exactly as the dataset's own targets do."""
    run = tmp_path / "effnetv2"
    shutil.copytree(tiny_run.run_dir, run)
    data = sources.open_dataset(tiny_run.cfg, "train")
    oof = load_run(run).oof
    targets = data.unit_targets(data.rows).loc[oof["eeg_id"]].to_numpy()
    expected = kl_score(targets, oof[list(VOTE_COLUMNS)].to_numpy())
    config = run / "fold1" / "config.yaml"
    config.write_text(config.read_text().replace(str(small_demo), str(tmp_path / "gone")))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a dataset was opened")

    monkeypatch.setattr(sources, "open_dataset", refuse)
    monkeypatch.setattr(HMSDataset, "__init__", refuse)
    monkeypatch.setattr(EpochDataset, "__init__", refuse)
    result = ensemble([load_run(run)], truth_of_run(run))
    assert result.table["cv"].iloc[0] == pytest.approx(expected, rel=1e-12)
    assert result.cv == pytest.approx(expected, rel=1e-12)  # one run: the blend is the run
    report = write_run_report(run)
    assert report["model"]["kl"] == pytest.approx(expected, rel=1e-12)
    assert report["model"]["units"] == len(oof)
    from hmsbrain.cli import ensemble_main

    ensemble_main([str(run)])
    assert f"blend CV {expected:.4f} nested" in capsys.readouterr().out
