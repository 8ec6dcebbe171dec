"""The Riemannian tangent-space baseline: pyRiemann and scikit-learn to the digit, soft labels as
band power fits them, a covariance-only task it solves and band power cannot, one channel, the
training fold's rows only, and its figures in every summary, report and table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pyriemann.estimation import Covariances
from pyriemann.geometry.mean import mean_riemann
from pyriemann.tangentspace import TangentSpace
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hmsbrain.models.bandpower import fit_bandpower
from hmsbrain.models.tangent import channels_first, fit_tangent_space

CS = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]


def _covariance_task(n: int, channels: int = 4, seed: int = 0):
    """Epochs ``(n, 256 samples, channels)`` of white noise, 8 subjects, where class 1's channel
    1 is 0.8 x channel 0 + 0.6 x its own noise: the same variance and the same flat spectrum
    on every channel in both classes, so only the channels' covariance tells them apart."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.standard_normal((n, 256, channels))
    x[y == 1, :, 1] = 0.8 * x[y == 1, :, 0] + 0.6 * x[y == 1, :, 1]
    return x, y, np.arange(n) * 8 // n


def _by_hand(classifier: object):
    return make_pipeline(
        Covariances(estimator="oas"), TangentSpace(metric="riemann"), StandardScaler(), classifier
    )


def test_tangent_baseline_is_the_pyriemann_and_scikit_learn_pipeline() -> None:
    """Fitted in chunks, with one strength or with strengths chosen by log loss in grouped
    inner folds, it gives the probabilities of a Pipeline fitted by hand on the same epochs."""
    raw, y, groups = _covariance_task(120, seed=1)
    train, test = slice(0, 90), slice(90, None)
    chunks = [raw[:50], raw[50:90]]
    fit = fit_tangent_space(chunks, np.eye(2)[y[train]])
    reference = _by_hand(LogisticRegression(max_iter=5000))
    reference.fit(channels_first(raw[train]), y[train])
    expected = reference.predict_proba(channels_first(raw[test]))
    np.testing.assert_allclose(fit.predict(raw[test]), expected, rtol=0, atol=1e-12)
    chosen = fit_tangent_space(chunks, np.eye(2)[y[train]], CS, groups=groups[train])
    search = LogisticRegressionCV(
        Cs=CS,
        l1_ratios=(0.0,),
        cv=list(GroupKFold(3).split(y[train], groups=groups[train])),
        scoring="neg_log_loss",
        max_iter=5000,
        use_legacy_attributes=False,
    )
    reference = _by_hand(search).fit(channels_first(raw[train]), y[train])
    assert chosen.c == search.C_ and chosen.c in CS
    expected = reference.predict_proba(channels_first(raw[test]))
    np.testing.assert_allclose(chosen.predict(raw[test]), expected, rtol=0, atol=1e-12)


def test_soft_targets_are_weighted_copies_as_for_band_power_and_absent_classes_get_none() -> None:
    """Each epoch once per class it has some probability of, weighted by it; the tangent space
    and the scaler see each epoch once. A class no training epoch has gets probability 0."""
    raw, y, _ = _covariance_task(80, seed=2)
    targets = np.zeros((80, 3))
    targets[np.arange(80), y] = 0.7
    targets[np.arange(80), 1 - y] = 0.3  # class 2: no epoch
    fit = fit_tangent_space([raw], targets)
    covs = Covariances(estimator="oas").transform(channels_first(raw))
    tangent = TangentSpace(metric="riemann").fit(covs)
    scaler = StandardScaler().fit(tangent.transform(covs))
    x = scaler.transform(tangent.transform(covs))
    rows, classes = np.nonzero(targets > 0)
    clf = LogisticRegression(max_iter=5000).fit(
        x[rows], classes, sample_weight=targets[rows, classes]
    )
    probs = fit.predict(raw)
    np.testing.assert_allclose(probs[:, :2], clf.predict_proba(x), rtol=0, atol=1e-12)
    assert (probs[:, 2] == 0).all()


def test_a_covariance_only_task_is_solved_by_the_tangent_space_not_by_band_power() -> None:
    raw, y, groups = _covariance_task(400, seed=3)
    train, test = slice(0, 240), slice(240, None)
    targets = np.eye(2)[y[train]]
    tangent = fit_tangent_space([raw[train]], targets, CS, groups=groups[train])
    bands = [1, 4, 8, 13, 20, 30, 45]
    power = fit_bandpower(raw[train], targets, 128.0, bands, CS, groups=groups[train])

    def score(probs: np.ndarray) -> float:
        return float(balanced_accuracy_score(y[test], probs.argmax(axis=1)))

    assert score(tangent.predict(raw[test])) > 0.95
    assert score(power.predict(raw[test])) < 0.65  # chance is 0.5


def test_one_channel_is_the_log_variance_and_works() -> None:
    """A 1 x 1 covariance is the epoch's variance; its tangent space, the log of its ratio to
    the training epochs' geometric mean: a class twice as loud is found."""
    rng = np.random.default_rng(4)
    y = np.arange(100) % 2
    raw = rng.standard_normal((100, 128, 1)) * np.where(y == 1, 2.0, 1.0)[:, None, None]
    fit = fit_tangent_space([raw[:60]], np.eye(2)[y[:60]], CS)
    probs = fit.predict(raw[60:])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert (probs.argmax(axis=1) == y[60:]).mean() > 0.9


# --- In a run ------------------------------------------------------------------------------------


def _arrays_dataset(root: Path, n: int = 120) -> Path:
    """The covariance-only task as an arrays folder (microvolts, 4 channels, 6 subjects)."""
    raw, y, _ = _covariance_task(n, seed=5)
    root.mkdir(parents=True)
    np.save(root / "X.npy", (10 * channels_first(raw)).astype(np.float32))
    np.save(root / "y.npy", y)
    np.save(root / "groups.npy", np.array([f"s{i % 6}" for i in range(n)]))
    spec = {"sample_rate": 128, "channels": ["Fz", "C3", "Pz", "Oz"], "classes": ["a", "b"]}
    (root / "dataset.yaml").write_text(yaml.safe_dump(spec))
    return root


def _overrides(tmp_path: Path) -> list[str]:
    return [
        f"data.data_dir={_arrays_dataset(tmp_path / 'cov')}",
        f"train.output_dir={tmp_path / 'out'}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "folds.n_folds=3",
    ]


def test_the_baseline_is_fitted_on_the_training_folds_rows_only(tmp_path) -> None:
    """Its reference point is the Riemannian mean of the training rows' covariances; with the
    validation fold's rows in it, the point would move."""
    from hmsbrain.config import GENERIC_RECIPE, load_config, recipe_path
    from hmsbrain.training import loop
    from hmsbrain.training.setup import open_experiment, setup_fold

    cfg = load_config(
        recipe_path(GENERIC_RECIPE), [*_overrides(tmp_path), "train.baseline=[tangent]"]
    )
    exp = open_experiment(cfg)
    setup = setup_fold(exp, 1)
    fits = loop._fit_baselines(exp, setup)
    assert list(fits) == ["tangent"]
    reference = fits["tangent"].pipeline.named_steps["tangent"].reference_

    def mean_of(index: np.ndarray) -> np.ndarray:
        raw = exp.inputs.batch(index)["raw"]
        return mean_riemann(Covariances(estimator="oas").transform(channels_first(raw)))

    np.testing.assert_allclose(reference, mean_of(setup.train_rows.index.to_numpy()), rtol=1e-6)
    everything = mean_of(exp.rows.index.to_numpy())
    assert not np.allclose(reference, everything, rtol=1e-3)


@pytest.mark.slow
def test_both_baselines_are_in_the_summary_the_report_and_the_tables(tmp_path, capsys) -> None:
    """A band-power run (fitted: no epochs to wait for) with the default baselines: each writes
    its OOF and summary block, the run report, the CV table and the ensemble show both, and
    ``--with-baselines`` blends them by nested CV without writing a submission."""
    from hmsbrain.cli import ensemble_main, train_main

    train_main(["--fold", "all", "--backbone", "bandpower", *_overrides(tmp_path)])
    out = capsys.readouterr().out
    run = tmp_path / "out" / "bandpower"
    for fold in range(3):
        summary = json.loads((run / f"fold{fold}" / "summary.json").read_text())
        assert set(summary["baselines"]) == {"bandpower", "tangent"}
        assert summary["baselines"]["tangent"]["c"] in CS
        oof = pd.read_parquet(run / f"fold{fold}" / "baseline_tangent_oof.parquet")
        assert list(oof.columns) == ["epoch", "fold", "a", "b"] and (oof["fold"] == fold).all()
        line = next(x for x in out.splitlines() if x.startswith(f"fold {fold}: CV"))
        assert "band-power baseline" in line and "tangent-space baseline" in line
    assert "all folds:" in out and "tangent-space baseline" in out.split("all folds:")[1]
    report = json.loads((run / "report.json").read_text())
    tangent = report["baselines"]["tangent"]
    assert tangent["units"] == 120 and tangent["balanced_accuracy"] > 0.8
    assert report["baselines"]["bandpower"]["balanced_accuracy"] < 0.7
    assert set(report["folds"][0]["baselines"]) == {"bandpower", "tangent"}
    markdown = (run / "report.md").read_text()
    assert "| tangent-space baseline | 120 |" in markdown
    assert "; tangent-space baseline KL" in markdown

    ensemble_main([str(run), "--out-dir", str(tmp_path / "sub")])
    out = capsys.readouterr().out
    assert "tangent-space baseline (bandpower's folds)" in out
    ensemble_main([str(run), "--with-baselines", "--out-dir", str(tmp_path / "sub")])
    out = capsys.readouterr().out
    assert "blend CV" in out and "no submission is written" in out
    assert not (tmp_path / "sub").exists()
