"""Any labelled EEG through the same pipeline: montages for any channel set, polyphase
resampling, the band-power baseline equal to scikit-learn, hard-label metrics and reports, and
EDF recordings end to end, from training to sliding-window prediction on a new recording."""

from __future__ import annotations

import json
from pathlib import Path

import edfio
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import GroupKFold
from sklearn.preprocessing import StandardScaler

from hmsbrain.cli import GENERIC_CONFIG, predict_main, train_main
from hmsbrain.config import ConfigError, PreprocessConfig, load_config
from hmsbrain.core.inputs import ALL_INPUTS
from hmsbrain.dsp.filters import resample
from hmsbrain.dsp.montage import choose_montage
from hmsbrain.dsp.pipeline import epoch_inputs
from hmsbrain.hms.constants import EEG_COLUMNS
from hmsbrain.hms.preprocess import bipolar_montage
from hmsbrain.models.bandpower import BandpowerFit, Periodogram, bandpower_model, fit_bandpower

EMOTIV = ("AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8", "T8", "FC6", "F4", "F8", "AF4")


# --- Montages, resampling, inputs ---------------------------------------------------------------


def test_generic_double_banana_is_the_hms_montage() -> None:
    montage = choose_montage("auto", EEG_COLUMNS)  # old temporal names T3..T6 included
    assert montage.kind == "double_banana" and len(montage.names) == 16
    eeg = np.random.default_rng(0).standard_normal((2, 300, 20)).astype(np.float32)
    np.testing.assert_array_equal(montage.apply(np.swapaxes(eeg, -1, -2)), bipolar_montage(eeg))
    np.testing.assert_array_equal(montage.group_mirror, [1, 0, 3, 2])  # LL<->RL, LP<->RP


def test_referential_montages_group_by_region_and_mirror_by_name() -> None:
    montage = choose_montage("auto", EMOTIV)
    assert montage.kind == "identity"
    assert montage.group_names == ("frontal", "central", "temporal", "parietal", "occipital")
    assert [EMOTIV[i] for i in montage.groups[2]] == ["T7", "T8"]
    assert EMOTIV[montage.mirror[0]] == "AF4" and EMOTIV[montage.mirror[4]] == "T8"
    single = choose_montage("auto", ("FP1",))
    assert single.groups == ((0,),) and single.mirror is None  # no partner: no swap
    car = choose_montage("average", EMOTIV)
    x = np.random.default_rng(1).standard_normal((3, 14, 50))
    np.testing.assert_allclose(car.apply(x).mean(axis=-2), 0.0, atol=1e-5)


def test_polyphase_resampling_keeps_the_band_and_removes_aliases() -> None:
    t = np.arange(2048) / 256.0
    slow, fast = np.sin(2 * np.pi * 10 * t), np.sin(2 * np.pi * 100 * t)
    out = resample(np.stack([slow, fast]).astype(np.float32), 256, 128)
    assert out.shape == (2, 1024)
    inner = slice(64, -64)
    np.testing.assert_allclose(out[0, inner], slow[::2][inner], atol=0.02)
    assert np.abs(out[1, inner]).max() < 0.01  # 100 Hz is above the new 64 Hz Nyquist rate


@pytest.mark.parametrize("channels", [1, 14, 64])
def test_inputs_for_any_channel_count(channels) -> None:
    names = EMOTIV if channels == 14 else tuple(f"ch{i}" for i in range(channels))
    cfg = PreprocessConfig(
        sample_rate=128,
        bandpass_high=40,
        fmax=40,
        n_fft=256,
        win_length=64,
        n_mels=16,
        n_frames=16,
        raw_downsample=1,
    )
    montage = choose_montage("auto", names, cfg.max_image_groups)
    signals = 20 * np.random.default_rng(2).standard_normal((3, channels, 256))
    batch = epoch_inputs(signals.astype(np.float32), 256.0, montage, cfg, ALL_INPUTS)
    groups = len(montage.groups)
    assert batch["raw"].shape == (3, 128, channels)  # 1 s at 128 Hz, channels last
    assert batch["image"].shape == (3, groups * 16, 16, 3)
    assert np.isfinite(batch["image"]).all() and np.isfinite(batch["raw"]).all()


# --- The band-power baseline --------------------------------------------------------------------


def test_bandpower_baseline_is_scikit_learn_and_its_keras_graph_agrees() -> None:
    rng = np.random.default_rng(3)
    n, t = 150, np.arange(256) / 128.0
    y = rng.integers(0, 3, n)
    raw = rng.standard_normal((n, 256, 4)).astype(np.float32)
    raw[y == 1, :, 0] += 1.5 * np.sin(2 * np.pi * 10 * t).astype(np.float32)
    raw[y == 2, :, 2] += 1.5 * np.sin(2 * np.pi * 25 * t).astype(np.float32)
    edges = [1, 4, 8, 13, 20, 30, 45]
    fit = fit_bandpower(raw, np.eye(3)[y], 128.0, edges)
    period = Periodogram.of(256, 128.0, edges)
    features = period.features(raw)
    scaler = StandardScaler().fit(features)
    reference = LogisticRegression(max_iter=5000).fit(scaler.transform(features), y)
    np.testing.assert_allclose(
        fit.predict(raw), reference.predict_proba(scaler.transform(features)), atol=1e-6
    )
    assert (fit.predict(raw).argmax(axis=1) == y).mean() > 0.9
    model = bandpower_model(fit, raw.shape[1:], "bp")
    np.testing.assert_allclose(model.predict(raw, verbose=0), fit.predict(raw), atol=1e-5)
    assert period.band_edges[-1] == (30.0, 45.0) and period.frame == 128


@pytest.mark.parametrize("n_samples", [65, 129, 300])
def test_bandpower_graph_agrees_on_batches_of_short_and_odd_epochs(n_samples: int) -> None:
    """One 65-sample frame (0.5 s at 128 Hz), one 128-sample frame with a sample left over, and
    3 frames with samples left over: the Keras graph gives scikit-learn's probabilities on a
    batch (TF's oneDNN convolution once broke the single-frame, odd-length cases)."""
    rng = np.random.default_rng(1)
    y = np.arange(60) % 3
    raw = rng.standard_normal((60, n_samples, 4)).astype(np.float32)
    raw[y == 1, :, 0] *= 3
    fit = fit_bandpower(raw, np.eye(3)[y], 128.0, [1, 4, 8, 13, 20, 30, 45])
    model = bandpower_model(fit, raw.shape[1:], "bp")
    np.testing.assert_allclose(model.predict(raw, verbose=0), fit.predict(raw), atol=1e-5)


def _weak_alpha(n: int, channels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epochs (2 s at 128 Hz) whose class 1 has a weak 10 Hz rhythm on channel 0, labels, and
    8 subjects of 20 epochs each."""
    rng = np.random.default_rng(0)
    t = np.arange(256) / 128.0
    y = np.arange(n) % 2
    raw = rng.standard_normal((n, 256, channels)).astype(np.float32)
    raw[y == 1, :, 0] += 0.5 * np.sin(2 * np.pi * 10 * t).astype(np.float32)
    return raw, y, np.arange(n) // 20


BANDPOWER_CS = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]


def test_bandpower_baseline_scores_its_l2_strengths_by_weighted_log_loss_in_grouped_folds() -> None:
    """Soft labels are fitted as weighted copies; the inner folds keep a subject's copies on one
    side and weigh them in the score too. Scored unweighted, the copies look like coin flips and
    the weakest model (C=1e-4) would win; weighted, the by-hand search picks C=0.1."""
    edges = [1, 4, 8, 13, 20, 30, 45]
    raw, y, groups = _weak_alpha(160, 16)
    targets = np.where(np.eye(2)[y] > 0, 0.8, 0.2)
    chosen = fit_bandpower(raw, targets, 128.0, edges, BANDPOWER_CS, groups=groups)
    features = StandardScaler().fit_transform(Periodogram.of(256, 128.0, edges).features(raw))
    rows, classes = np.nonzero(targets > 0)
    weight = targets[rows, classes]
    splits = list(GroupKFold(3).split(rows, groups=groups[rows]))
    by_hand = [
        np.mean(
            [
                log_loss(
                    classes[b],
                    LogisticRegression(C=c, max_iter=5000)
                    .fit(features[rows[a]], classes[a], sample_weight=weight[a])
                    .predict_proba(features[rows[b]]),
                    sample_weight=weight[b],
                )
                for a, b in splits
            ]
        )
        for c in BANDPOWER_CS
    ]
    assert chosen.c == BANDPOWER_CS[int(np.argmin(by_hand))] == 0.1


def test_bandpower_baseline_chosen_strength_does_not_overfit_many_features() -> None:
    """64 channels x 6 bands on 160 epochs: a fixed C=1 overfits (held-out log loss above the
    class prior's); the strength chosen in inner folds beats the prior."""
    raw, y, groups = _weak_alpha(240, 64)
    targets = np.eye(2)[y]
    train, test = slice(0, 160), slice(160, None)
    edges = [1, 4, 8, 13, 20, 30, 45]
    fixed = fit_bandpower(raw[train], targets[train], 128.0, edges)
    chosen = fit_bandpower(
        raw[train], targets[train], 128.0, edges, BANDPOWER_CS, groups=groups[train]
    )

    def held_out(fit: BandpowerFit) -> float:
        return float(log_loss(y[test], fit.predict(raw[test])))

    assert held_out(fixed) > np.log(2) > held_out(chosen) and chosen.c < 1.0


def test_arrays_without_groups_are_split_by_epoch(tmp_path: Path) -> None:
    """X.npy alone holds every epoch: without groups.npy the folds split epochs (by file they
    could not split at all)."""
    from hmsbrain.data.sources import open_dataset

    root = _arrays_dataset(tmp_path / "arrays")
    (root / "groups.npy").unlink()
    cfg = load_config(GENERIC_CONFIG, [f"data.data_dir={root}"])
    data = open_dataset(cfg, "train")
    assert data.group_kind == "epoch" and len(data.fold_units()) == 120


# --- Runs on generic layouts ---------------------------------------------------------------------


def _arrays_dataset(root: Path, n: int = 120, seed: int = 4) -> Path:
    """A binary ERP task: a centro-parietal bump on noise, 6 subjects, 2 s at 128 Hz."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    t = np.arange(256) / 128.0
    y = np.arange(n) % 2
    x = 10 * rng.standard_normal((n, 4, 256)).astype(np.float32)
    x[y == 1, 1:3] += (15 * np.exp(-(((t - 0.6) / 0.1) ** 2))).astype(np.float32)
    np.save(root / "X.npy", x)
    np.save(root / "y.npy", y)
    np.save(root / "groups.npy", np.array([f"s{i % 6}" for i in range(n)]))
    spec = {"sample_rate": 128, "channels": ["Fz", "C3", "Pz", "Oz"], "classes": ["std", "tgt"]}
    (root / "dataset.yaml").write_text(yaml.safe_dump(spec))
    return root


def _quick(tmp_path: Path) -> list[str]:
    return [
        f"train.output_dir={tmp_path / 'out'}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "folds.n_folds=3",
        "train.stage1_epochs=2",
        "train.batch_size=16",
    ]


@pytest.mark.slow
def test_hard_label_run_reports_every_metric_beside_the_baseline(tmp_path, capsys) -> None:
    data = _arrays_dataset(tmp_path / "erp")
    train_main(
        ["--data-dir", str(data), "--fold", "all", "--backbone", "eegnet", *_quick(tmp_path)]
    )
    out = capsys.readouterr().out
    assert "band-power baseline" in out and "chance 0.500" in out
    run = tmp_path / "out" / "eegnet"
    summary = json.loads((run / "fold0" / "summary.json").read_text())
    assert summary["hard"] and summary["classes"] == ["std", "tgt"]
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "per_class", "confusion"):
        assert key in summary["metrics"], key
    assert "balanced_accuracy" in summary["baselines"]["bandpower"]
    oof = pd.read_parquet(run / "fold0" / "oof.parquet")
    assert list(oof.columns) == ["epoch", "fold", "std", "tgt"]
    report = json.loads((run / "report.json").read_text())
    assert report["model"]["units"] == 120 and set(report["baselines"]) == {"bandpower", "tangent"}
    assert sum(map(sum, report["model"]["confusion"])) == 120
    confusion = pd.read_csv(run / "confusion.csv", index_col=0)
    assert list(confusion.columns) == ["std", "tgt"] and confusion.to_numpy().sum() == 120
    assert (run / "confusion.png").stat().st_size > 1000
    assert "| band-power baseline |" in (run / "report.md").read_text()
    # Every epoch of a subject in one fold.
    folds = pd.read_csv(next((tmp_path / "cache").glob("folds-*.csv")))
    assert (folds.groupby("group")["fold"].nunique() == 1).all()


def test_tta_on_channels_without_a_mirror_is_refused(tmp_path, capsys) -> None:
    data = _arrays_dataset(tmp_path / "erp", n=30)
    with pytest.raises(SystemExit) as exit_info:
        train_main(
            ["--data-dir", str(data), "--backbone", "eegnet", *_quick(tmp_path), "train.tta=true"]
        )
    assert exit_info.value.code == 2
    assert "has none" in capsys.readouterr().err
    assert not (tmp_path / "out" / "eegnet" / "fold0" / "model.keras").exists()


def _write_edf(path: Path, data: np.ndarray, names: tuple[str, ...], fs: int) -> None:
    signals = [
        edfio.EdfSignal(
            row,
            sampling_frequency=fs,
            label=name,
            physical_dimension="uV",
            physical_range=(-2000.0, 2000.0),
        )
        for row, name in zip(data, names, strict=True)
    ]
    edfio.Edf(signals).write(path)


def _recordings(root: Path, subjects: int, fs: int = 128, seconds: int = 60, seed: int = 5):
    """EDF recordings of 4 channels with 'blink' (frontal bump) and 'rest' markers."""
    rng = np.random.default_rng(seed)
    names = ("Fp1", "Fp2", "O1", "O2")
    root.mkdir(parents=True)
    events = []
    for s in range(subjects):
        data = 15 * rng.standard_normal((4, seconds * fs))
        for k, onset in enumerate(np.arange(2.0, seconds - 2, 1.5)):
            label = "blink" if k % 2 else "rest"
            if label == "blink":
                at = int(onset * fs)
                data[:2, at : at + 40] += 150 * np.hanning(40)
            events.append(
                {"file": f"sub{s}.edf", "onset": onset, "label": label, "subject": f"s{s}"}
            )
        _write_edf(root / f"sub{s}.edf", data, names, fs)
    return events


@pytest.mark.slow
def test_edf_recordings_train_and_predict_sliding_windows(tmp_path, capsys) -> None:
    """EDF end to end: recordings with an events table train a run; a new EDF recording
    without events is predicted window by window, one CSV per recording."""
    root = tmp_path / "edf"
    pd.DataFrame(_recordings(root, subjects=3)).to_csv(root / "events.csv", index=False)
    (root / "dataset.yaml").write_text(yaml.safe_dump({"tmin": -0.1, "tmax": 0.4}))
    train_main(
        ["--data-dir", str(root), "--fold", "all", "--backbone", "eegnet", *_quick(tmp_path)]
    )
    run = tmp_path / "out" / "eegnet"
    report = json.loads((run / "report.json").read_text())
    assert report["classes"] == ["blink", "rest"] and report["model"]["units"] > 100
    assert report["model"]["balanced_accuracy"] > 0.7  # a 150 uV frontal bump is easy
    new = tmp_path / "new"
    _recordings(new, subjects=1, seconds=20, seed=6)
    (new / "sub0.edf").rename(new / "night.edf")
    predict_main([str(run), "--data-dir", str(new), "--runtime", "keras"])
    windows = pd.read_csv(run / "windows" / "night.csv")
    # Windows as long as the training epochs (-0.1..0.4 s: 65 samples at 128 Hz, both ends
    # included, as MNE cuts them) every half window (32 samples) over the 20 s recording.
    assert list(windows.columns) == ["start", "end", "blink", "rest"]
    assert len(windows) == (20 * 128 - 65) // 32 + 1
    np.testing.assert_allclose(windows["end"] - windows["start"], 65 / 128, atol=1e-4)
    np.testing.assert_allclose(np.diff(windows["start"]), 32 / 128, atol=1e-4)
    np.testing.assert_allclose(windows[["blink", "rest"]].sum(axis=1), 1.0, atol=1e-5)


def test_generic_recipe_is_the_default_for_other_layouts(tmp_path) -> None:
    from hmsbrain.cli import DEFAULT_CONFIG, GENERIC_CONFIG, default_recipe

    erp = _arrays_dataset(tmp_path / "erp", n=10)
    assert default_recipe([f"data.data_dir={erp}"]) == GENERIC_CONFIG
    assert default_recipe(["data.data_dir=demo:trials64"]) == GENERIC_CONFIG
    assert default_recipe([]) == DEFAULT_CONFIG
    assert load_config(GENERIC_CONFIG).preprocess.standardize is True
    with pytest.raises(ConfigError, match=r"preprocess\.montage='bipolar' is not one of"):
        choose_montage("bipolar", EMOTIV)


@pytest.mark.slow
def test_generic_runs_export_predict_and_ensemble_unchanged(tmp_path, capsys) -> None:
    """EEGNet, ShallowConvNet and the fitted band-power baseline on the same folds: each
    exports to ONNX with its parity check, predicts a held-out folder of the same layout on
    ONNX Runtime, and ensemble.py blends them with a nested CV and the hard-label metrics."""
    from hmsbrain.cli import ensemble_main, export_main

    data = _arrays_dataset(tmp_path / "erp")
    held_out = _arrays_dataset(tmp_path / "held_out", n=20, seed=9)
    runs = []
    for backbone in ("eegnet", "shallow", "bandpower"):
        train_main(
            ["--data-dir", str(data), "--fold", "all", "--backbone", backbone, *_quick(tmp_path)]
        )
        runs.append(str(tmp_path / "out" / backbone))
    export_main(runs)
    predict_main([*runs, "--data-dir", str(held_out), "--runtime", "onnx"])
    capsys.readouterr()
    ensemble_main([*runs, "--name", "erp", "--out-dir", str(tmp_path / "sub")])
    out = capsys.readouterr().out
    assert "blend CV" in out and "nested" in out and "balanced_accuracy" in out
    assert "band-power baseline (eegnet's folds)" in out
    blended = pd.read_csv(tmp_path / "sub" / "erp.csv")
    assert list(blended.columns) == ["epoch", "std", "tgt"] and len(blended) == 20
    report = json.loads((tmp_path / "sub" / "erp.json").read_text())
    assert set(report["weights"]) == {"eegnet", "shallow", "bandpower"}
    assert 0 <= report["blend_metrics"]["balanced_accuracy"] <= 1
    # The band-power run's model is the baseline itself: same out-of-fold predictions.
    fold = tmp_path / "out" / "bandpower" / "fold0"
    np.testing.assert_allclose(
        pd.read_parquet(fold / "oof.parquet")[["std", "tgt"]],
        pd.read_parquet(fold / "baseline_bandpower_oof.parquet")[["std", "tgt"]],
        atol=1e-5,
    )


def test_a_bad_file_stops_training_with_one_line_and_writes_nothing(tmp_path, capsys) -> None:
    root = tmp_path / "folders"
    for label in ("rest", "blink"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            np.savetxt(root / label / f"s{i}_{label}.txt", np.random.default_rng(i).normal(size=64))
    (root / "dataset.yaml").write_text(yaml.safe_dump({"sample_rate": 128, "classes": ["rest"]}))
    with pytest.raises(SystemExit) as exit_info:
        train_main(["--data-dir", str(root), *_quick(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and str(root / "blink") in err and "unknown class" in err
    assert not (tmp_path / "out").exists()
