"""The logit-bias blend (``ensemble.py --method logit-bias``, issue 20): softmax of weights on the
runs' log-probabilities plus a per-class bias. A known blend is recovered exactly, the blend is
the hand computation, its CV is nested (fitted on the other folds only), the report names the
method and carries the bias, and the Kaggle kernel applies it from the package manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hmsbrain.core.metrics import kl_score
from hmsbrain.core.truth import Truth
from hmsbrain.hms import kaggle
from hmsbrain.hms.constants import TEST_CSV, VOTE_COLUMNS
from hmsbrain.hms.dataset import eeg_targets, eeg_vote_counts
from hmsbrain.inference import ensemble as ensemble_module
from hmsbrain.inference.ensemble import (
    EnsembleError,
    RunPredictions,
    blend,
    ensemble,
    fit_blend,
    write_report,
)

CLASSES = list(VOTE_COLUMNS)


def _frame(ids, probs, fold) -> pd.DataFrame:
    frame = pd.DataFrame(probs, columns=CLASSES)
    frame.insert(0, "eeg_id", ids)
    frame.insert(1, "fold", fold)
    return frame


def _truth(ids, targets) -> Truth:
    votes = np.rint(targets * 1000).astype(int)  # 1000 votes each: the targets to 1e-3
    rows = pd.DataFrame({"eeg_id": ids, **dict(zip(CLASSES, votes.T, strict=True))})
    groups = pd.Series(ids, index=pd.Index(ids, name="eeg_id"))
    return Truth(eeg_targets(rows), eeg_vote_counts(rows), groups, False, "unused")


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


KNOWN_WEIGHTS = np.array([0.8, 1.7, 0.0])
KNOWN_BIAS = np.array([0.5, -0.3, 0.2, -0.6, 0.1, 0.1])  # sums to zero


def _known(n: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    preds = [rng.dirichlet(np.ones(6), n) for _ in range(3)]
    z = sum(w * np.log(p) for w, p in zip(KNOWN_WEIGHTS, preds, strict=True)) + KNOWN_BIAS
    return preds, _softmax(z)


def test_the_blend_is_the_softmax_of_weighted_log_probabilities_plus_the_bias() -> None:
    a = np.array([[0.5, 0.2, 0.1, 0.1, 0.05, 0.05]])
    b = np.array([[0.1, 0.6, 0.1, 0.1, 0.05, 0.05]])
    weights, bias = np.array([0.5, 2.0]), np.array([1.0, 0, 0, 0, 0, -1.0])
    z = 0.5 * np.log(a) + 2.0 * np.log(b) + bias
    expected = np.exp(z) / np.exp(z).sum()
    np.testing.assert_allclose(blend([a, b], weights, "logit-bias", bias), expected, rtol=1e-12)
    with pytest.raises(EnsembleError, match="needs its per-class bias"):
        blend([a, b], weights, "logit-bias")


def test_known_weights_and_bias_are_recovered_exactly() -> None:
    preds, target = _known(500, seed=0)
    fitted = fit_blend(preds, target, "logit-bias")
    assert fitted.method == "logit-bias"
    np.testing.assert_allclose(fitted.weights, KNOWN_WEIGHTS, atol=1e-6)
    np.testing.assert_allclose(fitted.bias, KNOWN_BIAS, atol=1e-6)
    assert kl_score(target, fitted.apply(preds)) < 1e-8
    # The probability blends cannot express a temperature or a bias: they stay far from it.
    assert kl_score(target, fit_blend(preds, target).apply(preds)) > 1e-3


def test_the_nested_cv_fits_each_fold_on_the_other_folds_only() -> None:
    rng = np.random.default_rng(1)
    preds, clean = _known(120, seed=1)
    # Noisy targets, so fits on different folds differ and a leak would show.
    target = 0.7 * clean + 0.3 * rng.dirichlet(np.ones(6), 120)
    ids = np.arange(120) + 10
    folds = rng.permutation(np.arange(120) % 4)
    runs = [
        RunPredictions(n, _frame(ids, p, folds), None) for n, p in zip("abc", preds, strict=True)
    ]
    truth = _truth(ids, target)
    scored = truth.targets.loc[ids].to_numpy()
    result = ensemble(runs, truth, method="logit-bias")
    expected = np.empty_like(scored)
    for k in range(4):
        fitted = fit_blend([p[folds != k] for p in preds], scored[folds != k], "logit-bias")
        expected[folds == k] = fitted.apply([p[folds == k] for p in preds])
    assert result.cv == pytest.approx(kl_score(scored, expected), rel=1e-9)
    whole = fit_blend(preds, scored, "logit-bias")
    assert result.cv_in_sample == pytest.approx(kl_score(scored, whole.apply(preds)), rel=1e-9)
    assert result.cv > result.cv_in_sample  # out of sample: no flattery
    assert result.method == "logit-bias"
    np.testing.assert_allclose(result.bias, whole.bias)
    assert result.table["run"].iloc[-2] == "blend (logit-bias), nested CV"


def test_a_single_run_is_recalibrated_and_still_scored_out_of_sample() -> None:
    """A weight and a bias are fitted even to one run, so its blend CV must be nested too."""
    rng = np.random.default_rng(2)
    preds, target = _known(90, seed=2)
    ids, folds = np.arange(90), rng.permutation(np.arange(90) % 3)
    truth = _truth(ids, target)
    result = ensemble(
        [RunPredictions("a", _frame(ids, preds[1], folds), None)], truth, method="logit-bias"
    )
    assert result.cv != pytest.approx(result.cv_in_sample)


def test_the_report_names_the_method_and_the_kernel_applies_its_bias(tmp_path, monkeypatch) -> None:
    rng = np.random.default_rng(4)
    preds, target = _known(60, seed=4)
    ids, folds = np.arange(60), np.arange(60) % 3
    test = [_frame([1, 2, 3], rng.dirichlet(np.ones(6), 3), -1) for _ in range(3)]
    runs = [
        RunPredictions(n, _frame(ids, p, folds), t)
        for n, p, t in zip("abc", preds, test, strict=True)
    ]
    result = ensemble(runs, _truth(ids, target), method="logit-bias")
    report_path = tmp_path / "blend.json"
    write_report(result, report_path, ["a", "b", "c"])
    report = json.loads(report_path.read_text())
    assert report["method"] == "logit-bias" and len(report["bias"]) == 6
    # The package manifest, as build_package writes it from the report.
    manifest = {
        "runs": ["a", "b", "c"],
        "method": report["method"],
        "weights": report["weights"],
        "bias": report["bias"],
        "tta": False,
        "class_prior": result.class_prior.tolist(),
    }
    (tmp_path / kaggle.MANIFEST).write_text(json.dumps(manifest))
    by_name = dict(zip("abc", test, strict=True))

    test_csv = pd.DataFrame({"spectrogram_id": [1, 2, 3], "eeg_id": [1, 2, 3], "patient_id": 0})
    test_csv.to_csv(tmp_path / TEST_CSV, index=False)

    class _Opened:  # a run the kernel opened: its name, and a runtime that can run it
        def __init__(self, run: Path) -> None:
            self.name, self.no_runtime = run.name, None

    class _Predicted:
        def __init__(self, frame: pd.DataFrame) -> None:
            self.frame, self.fallback = frame, {}

    def predicted(opened: _Opened, data_dir: str, *args, **kwargs) -> _Predicted:
        """The run's test rows of the EEGs in the test.csv the kernel hands it (the first EEG
        alone, then the rest, for the time projection)."""
        wanted = pd.read_csv(Path(data_dir) / TEST_CSV)["eeg_id"]
        frame = by_name[opened.name]
        return _Predicted(frame[frame["eeg_id"].isin(wanted)].reset_index(drop=True))

    monkeypatch.setattr(kaggle, "open_run", lambda run, *a, **k: _Opened(Path(run)))
    monkeypatch.setattr(kaggle, "predict_opened", predicted)
    blended, _ = kaggle.predict_package(tmp_path, tmp_path)
    z = sum(report["weights"][n] * np.log(by_name[n][CLASSES].to_numpy()) for n in "abc")
    np.testing.assert_allclose(
        blended[CLASSES].to_numpy(), _softmax(z + np.array(report["bias"])), rtol=1e-9
    )
    np.testing.assert_allclose(blended[CLASSES].to_numpy(), result.submission[CLASSES].to_numpy())
    del report["bias"]
    report_path.write_text(json.dumps(report))
    with pytest.raises(kaggle.PackageError, match="without its per-class 'bias'"):
        kaggle._read_report(report_path)


def test_the_cli_takes_the_method_and_prints_it(monkeypatch, capsys) -> None:
    preds, target = _known(60, seed=5)
    ids, folds = np.arange(60), np.arange(60) % 3
    runs = [
        RunPredictions(n, _frame(ids, p, folds), None) for n, p in zip("ab", preds[:2], strict=True)
    ]
    monkeypatch.setattr(ensemble_module, "load_run", lambda r: runs["ab".index(str(r))])
    monkeypatch.setattr(ensemble_module, "truth_of_run", lambda r: _truth(ids, target))
    from hmsbrain.cli import ensemble_main

    ensemble_main(["a", "b", "--method", "logit-bias"])
    out = capsys.readouterr().out
    assert "| logit-bias blend" in out and "logit-bias per-class bias: seizure_vote" in out
