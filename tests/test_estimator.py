"""``hmsbrain.EEGClassifier``: the portfolio as a scikit-learn classifier. It fits and predicts
what the command line does on the same data, pickles with its models, reads ``mne.Epochs``,
works in ``cross_val_score`` and a ``Pipeline``, refuses bad input in one line, passes the
scikit-learn API checks that apply to 3-D input, and runs in a MOABB evaluation beside a
pyRiemann pipeline (offline, on MOABB's FakeDataset)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import estimator_checks

import hmsbrain
from hmsbrain.cli import predict_main, train_main
from hmsbrain.estimator import EEGClassifier

CHANNELS = ["Fz", "C3", "Pz", "Oz"]
RATE = 128.0
# Fast settings for every test: the two quickest members, three folds, one L2 strength (no
# inner CV of the logistic regressions).
QUICK = {
    "sfreq": RATE,
    "ch_names": CHANNELS,
    "members": ["bandpower_lr", "tangent_lr"],
    "n_folds": 3,
    "overrides": ("portfolio.cs=[0.1]",),
}
# Faster still, where many fits are made (cross-validation, MOABB): one member, two folds.
FASTEST = {**QUICK, "members": ["tangent_lr"], "n_folds": 2}


def _microvolts(x: np.ndarray) -> np.ndarray:
    return x * 1e6


def _erp(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epochs ``(n, 4, 128)`` of 10 uV noise; "tgt" adds a 15 uV bump at 0.6 s on two channels
    and a 10 Hz rhythm on the third; six subjects."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(RATE)) / RATE
    y = np.array(["std", "tgt"])[np.arange(n) % 2]
    x = rng.normal(0, 10, (n, 4, len(t)))
    x[y == "tgt", 1:3] += 15 * np.exp(-(((t - 0.6) / 0.1) ** 2))
    x[y == "tgt", 3] += 12 * np.sin(2 * np.pi * 10 * t)
    return x.astype(np.float32), y, np.array([f"s{i // 2 % 6}" for i in range(n)])


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    x, y, groups = _erp(60, 3)
    x_new, y_new, _ = _erp(30, 9)
    return {"X": x, "y": y, "groups": groups, "X_new": x_new, "y_new": y_new}


@pytest.fixture(scope="module")
def fitted(data) -> tuple[EEGClassifier, dict[str, object], dict[str, object]]:
    """A fitted estimator, with its parameters and attributes before the fit."""
    est = EEGClassifier(**QUICK)
    params, before = est.get_params(deep=True), dict(vars(est))
    est.fit(data["X"], data["y"], groups=data["groups"])
    return est, params, before


def test_fit_predict_and_the_fitted_state(fitted, data) -> None:
    est, params, before = fitted
    assert est.classes_.tolist() == ["std", "tgt"]
    probs = est.predict_proba(data["X_new"])
    assert probs.shape == (30, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    assert est.score(data["X_new"], data["y_new"]) >= 0.9
    assert set(est.predict(data["X_new"])) <= {"std", "tgt"}
    members = set(est.report_["member"])
    assert {"bandpower_lr", "tangent_lr", "blend", "prior", "chance"} <= members
    assert est.sfreq_ == RATE and est.ch_names_ == CHANNELS
    # scikit-learn's rules for fit (check_estimators_overwrite_params and
    # check_dont_overwrite_parameters, on 3-D data): the parameters are untouched, and every
    # attribute fit adds ends in "_" (private ones start with one).
    assert est.get_params(deep=True) == params
    added = set(vars(est)) - set(before)
    assert added and all(a.endswith("_") or a.startswith("_") for a in added), added


def test_it_predicts_what_the_command_line_predicts(fitted, data, tmp_path, capsys) -> None:
    """The same arrays laid out by hand, trained and predicted by train.py and predict.py with
    the same settings, give the same probabilities: one recipe, one portfolio."""
    import yaml

    est = fitted[0]
    for name, x, labels in (("train", data["X"], data["y"]), ("new", data["X_new"], None)):
        root = tmp_path / name
        root.mkdir()
        np.save(root / "X.npy", x)
        spec = {"sample_rate": RATE, "channels": CHANNELS}
        if labels is not None:
            np.save(root / "y.npy", labels)
            np.save(root / "groups.npy", data["groups"])
        (root / "dataset.yaml").write_text(yaml.safe_dump(spec))
    settings = [
        "portfolio.members=[bandpower_lr,tangent_lr]",
        "folds.n_folds=3",
        "portfolio.cs=[0.1]",
        f"train.output_dir={tmp_path / 'out'}",
        f"data.cache_dir={tmp_path / 'cache'}",
    ]
    train_main(["--data-dir", str(tmp_path / "train"), "--fold", "all", *settings])
    run = tmp_path / "out" / "portfolio"
    predict_main([str(run), "--data-dir", str(tmp_path / "new")])
    capsys.readouterr()
    cli = pd.read_parquet(run / "test.parquet").set_index("epoch")
    cli = cli.loc[[f"epoch-{i}" for i in range(30)], ["std", "tgt"]].to_numpy()
    np.testing.assert_allclose(est.predict_proba(data["X_new"]), cli, atol=1e-6)


def test_a_pickled_estimator_predicts_the_same_without_any_folder(fitted, data) -> None:
    est = fitted[0]
    copy = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(
        copy.predict_proba(data["X_new"]), est.predict_proba(data["X_new"])
    )
    clean = clone(est)
    assert clean.get_params() == est.get_params() and not hasattr(clean, "portfolio_")


def test_mne_epochs_are_read_as_the_arrays_are(fitted, data) -> None:
    """Epochs in volts, labels from their events: the same classes and probabilities as the
    arrays in microvolts (prediction of arrays after fitting on Epochs uses the Epochs' rate
    and channels)."""
    import mne

    x, y = data["X"].astype(np.float64) * 1e-6, data["y"]
    info = mne.create_info(CHANNELS, RATE, "eeg")
    events = np.c_[np.arange(len(y)) * 200, np.zeros(len(y), int), np.where(y == "tgt", 2, 1)]
    epochs = mne.EpochsArray(x, info, events, event_id={"std": 1, "tgt": 2}, verbose=False)
    quick = {k: v for k, v in QUICK.items() if k not in ("sfreq", "ch_names")}
    est = EEGClassifier(**quick).fit(epochs, groups=data["groups"])
    assert est.classes_.tolist() == ["std", "tgt"]
    assert est.ch_names_ == CHANNELS and est.sfreq_ == RATE
    expected = fitted[0].predict_proba(data["X_new"])
    np.testing.assert_allclose(est.predict_proba(data["X_new"]), expected, atol=1e-4)
    with pytest.raises(ValueError, match="contradicts the Epochs"):
        EEGClassifier(sfreq=250.0).fit(epochs)


def test_cross_val_score_of_a_pipeline_with_groups(data) -> None:
    """Volts to microvolts in a first step, the classifier second; subjects are the outer
    folds' groups and, routed to fit, the inner folds' too."""
    pipe = make_pipeline(FunctionTransformer(_microvolts), EEGClassifier(**FASTEST))
    x, y, groups = data["X"] * 1e-6, data["y"], data["groups"]
    scores = cross_val_score(
        pipe, x, y, cv=GroupKFold(2), groups=groups, params={"eegclassifier__groups": groups}
    )
    assert scores.shape == (2,) and scores.min() >= 0.8


@pytest.mark.slow
def test_a_network_member_is_trained_kept_and_predicted(data) -> None:
    """EEGNet alone (two epochs of training): its fold models travel inside the estimator, and
    a pickled copy predicts what the original does through Keras."""
    quick = {**QUICK, "members": ["eegnet"]}
    quick["overrides"] = ("train.stage1_epochs=2", "train.batch_size=16")
    est = EEGClassifier(**quick).fit(data["X"], data["y"], groups=data["groups"])
    row = est.report_.set_index("member").loc["eegnet"]
    assert row["weight"] > 0, est.report_.to_string()
    probs = pickle.loads(pickle.dumps(est)).predict_proba(data["X_new"])
    np.testing.assert_allclose(probs, est.predict_proba(data["X_new"]), atol=1e-6)
    assert est.score(data["X_new"], data["y_new"]) >= 0.7


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"X": np.zeros((60, 128))}, "got 2-D"),
        ({"X": np.zeros((60, 4, 128, 1))}, "must be 3-D"),
        ({"X": np.full((60, 4, 128), np.nan)}, "NaN or infinity"),
        ({"y": np.array(["std"] * 60)}, "at least two classes"),
        ({"y": np.linspace(0, 1, 60)}, "Unknown label type"),
        ({"y": np.array(["std", "tgt"] * 20)}, "60 epochs but y has 40"),
        ({"groups": np.arange(3)}, "one id per epoch"),
        ({"sfreq": None}, "sfreq must be"),
        ({"ch_names": ["a", "b"]}, "ch_names names 2"),
        ({"units": "mV"}, "units must be one of"),
        ({"overrides": ("train.output_dir=/tmp/x",)}, r"\['train.output_dir'\]"),
        ({"overrides": ("portfolio.members=[]",), "members": None}, "members is empty"),
    ],
)
def test_bad_input_is_a_one_line_value_error(data, change, message) -> None:
    fit = {"X": data["X"], "y": data["y"], "groups": None}
    params = {**QUICK}
    for key, value in change.items():
        (fit if key in fit else params)[key] = value
    with pytest.raises(ValueError, match=message) as caught:
        EEGClassifier(**params).fit(**fit)
    assert "\n" not in str(caught.value)


def test_prediction_checks_its_input_against_the_fit(fitted, data) -> None:
    est = fitted[0]
    with pytest.raises(ValueError, match="X has 3 channels; the estimator was fitted on 4"):
        est.predict(data["X_new"][:, :3])
    with pytest.raises(NotFittedError):
        EEGClassifier(**QUICK).predict(data["X_new"])


def test_x_npy_alone_is_epochs_to_predict_not_to_train(data, tmp_path, capsys) -> None:
    """What the estimator's predictions read: the arrays layout without y.npy."""
    import yaml

    from hmsbrain.data.layouts import read_epochs

    np.save(tmp_path / "X.npy", data["X_new"])
    (tmp_path / "dataset.yaml").write_text(yaml.safe_dump({"sample_rate": RATE}))
    epochs = read_epochs(tmp_path)
    assert len(epochs) == 30 and not epochs.labelled
    with pytest.raises(SystemExit):
        train_main(["--data-dir", str(tmp_path), f"data.cache_dir={tmp_path / 'cache'}"])
    assert "the train split has no labels" in capsys.readouterr().err


def test_the_package_exports_it_lazily() -> None:
    assert hmsbrain.EEGClassifier is EEGClassifier
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = hmsbrain.nothing


# scikit-learn's checks that apply to an estimator of 3-D input. check_estimator and
# parametrize_with_checks run none for it: they feed 2-D arrays, and the estimator's tags
# (three_d_array, not two_d_array) make them skip it as a whole. The checks below feed no data
# to fit (parameters, cloning, tags, repr, init, the unfitted error); those that fit on 2-D data
# are repeated above on 3-D EEG: the fitted state and parameters untouched
# (test_fit_predict_and_the_fitted_state), pickling (test_a_pickled_estimator_...), bad input
# (test_bad_input_...), the Pipeline (test_cross_val_score_...).
API_CHECKS = [
    estimator_checks.check_estimator_cloneable,
    estimator_checks.check_estimator_tags_renamed,
    estimator_checks.check_valid_tag_types,
    estimator_checks.check_estimator_repr,
    estimator_checks.check_no_attributes_set_in_init,
    estimator_checks.check_parameters_default_constructible,
    estimator_checks.check_get_params_invariance,
    estimator_checks.check_set_params,
    estimator_checks.check_estimators_unfitted,
    estimator_checks.check_do_not_raise_errors_in_init_or_set_params,
    estimator_checks.check_mixin_order,
]


@pytest.mark.parametrize("check", API_CHECKS, ids=lambda c: c.__name__)
def test_scikit_learn_api_checks(check) -> None:
    check("EEGClassifier", EEGClassifier(**QUICK))


def test_check_estimator_skips_it_for_its_3d_input() -> None:
    with pytest.warns(estimator_checks.SkipTestWarning, match="three_d_array=True"):
        estimator_checks.check_estimator(EEGClassifier())


def test_moabb_evaluation_beside_a_pyriemann_pipeline(tmp_path, monkeypatch) -> None:
    """MOABB's within-session evaluation on its FakeDataset (generated, nothing downloaded):
    the estimator in a Pipeline beside tangent space + logistic regression."""
    pytest.importorskip("moabb")
    monkeypatch.setenv("MNE_DATA", str(tmp_path / "mne_data"))
    monkeypatch.setenv("HOME", str(tmp_path))  # MOABB and MNE write their config under ~
    from moabb.datasets.fake import FakeDataset
    from moabb.evaluations import WithinSessionEvaluation
    from moabb.paradigms import LeftRightImagery
    from pyriemann.estimation import Covariances
    from pyriemann.tangentspace import TangentSpace
    from sklearn.linear_model import LogisticRegression

    dataset = FakeDataset(
        event_list=["left_hand", "right_hand"], n_sessions=1, n_runs=1, n_subjects=1, seed=7
    )
    paradigm = LeftRightImagery()
    # MOABB gives FakeDataset's epochs in microvolts (a standard deviation of about 12).
    ours = EEGClassifier(**{**FASTEST, "ch_names": list(dataset.channels)})
    pipelines = {
        "hmsbrain": make_pipeline(ours),
        "TS+LR": make_pipeline(Covariances("oas"), TangentSpace(), LogisticRegression()),
    }
    evaluation = WithinSessionEvaluation(
        paradigm=paradigm,
        datasets=[dataset],
        overwrite=True,
        hdf5_path=str(tmp_path / "res"),
        n_splits=3,
    )
    results = evaluation.process(pipelines)
    scores = results.groupby("pipeline")["score"].mean()
    print(scores.to_string())
    assert set(scores.index) == {"hmsbrain", "TS+LR"}
    assert scores.between(0.0, 1.0).all()
    assert not (tmp_path / "mne_data").exists()  # generated: nothing was downloaded
