"""diagnose.py: every check fails (or warns, where that is its worst) on a small synthetic
dataset with the fault planted, and passes on the same data without it; the command writes its
report and exits 0 even with FAILs, 2 on user errors."""

from __future__ import annotations

import copy
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import yaml
from keras import ops

from hmsbrain.cli import GENERIC_CONFIG, diagnose_main
from hmsbrain.config import load_config
from hmsbrain.data.cache import InputCache
from hmsbrain.diagnose import data, inputs, labels, learning, split
from hmsbrain.diagnose.context import Context, RawWindows, build_context
from hmsbrain.diagnose.hashing import shared_content
from hmsbrain.diagnose.report import FAIL, PASS, WARN
from hmsbrain.training.setup import folds_file

CHANNELS = ["Fz", "C3", "Pz", "Oz"]
RATE = 128
SAMPLES = 256


def erp_signals(n: int, seed: int = 0, rate: int = RATE) -> tuple[np.ndarray, np.ndarray]:
    """A binary ERP task in microvolts: a centro-parietal bump on 10 uV noise, 2 s epochs."""
    rng = np.random.default_rng(seed)
    samples = 2 * rate
    t = np.arange(samples) / rate
    y = np.arange(n) % 2
    x = 10 * rng.standard_normal((n, len(CHANNELS), samples))
    x[y == 1, 1:3] += 15 * np.exp(-(((t - 0.6) / 0.1) ** 2))
    return x.astype(np.float32), y


def write_arrays(
    root: Path,
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray | None = None,
    rate: int = RATE,
    classes: tuple[str, ...] = ("std", "tgt"),
) -> Path:
    root.mkdir(parents=True)
    np.save(root / "X.npy", x)
    np.save(root / "y.npy", y)
    if groups is not None:
        np.save(root / "groups.npy", groups)
    spec = {"sample_rate": rate, "channels": CHANNELS, "classes": list(classes)}
    (root / "dataset.yaml").write_text(yaml.safe_dump(spec))
    return root


def subjects(n: int, k: int = 6) -> np.ndarray:
    return np.array([f"s{i % k}" for i in range(n)])


def context(root: Path, tmp: Path, *overrides: str, folds: pd.DataFrame | None = None) -> Context:
    """The context diagnose builds for ``root`` with the generic recipe, 3 folds; ``folds``
    (unit ids and folds) is saved first where the recipe reads its folds from."""
    cfg = load_config(
        GENERIC_CONFIG,
        [
            f"data.data_dir={root}",
            f"data.cache_dir={tmp / 'cache'}",
            f"train.output_dir={tmp / 'out'}",
            "folds.n_folds=3",
            "train.batch_size=16",
            *overrides,
        ],
    )
    if folds is not None:
        from hmsbrain.data.sources import open_dataset

        path = folds_file(cfg, open_dataset(cfg, "train"))
        path.parent.mkdir(parents=True, exist_ok=True)
        folds.to_csv(path, index=False)
    return build_context(cfg)


def epoch_folds(groups: np.ndarray, fold_of: dict[str, int]) -> pd.DataFrame:
    ids = [f"epoch-{i}" for i in range(len(groups))]
    return pd.DataFrame({"id": ids, "group": groups, "fold": [fold_of[g] for g in groups]})


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Context:
    """A clean dataset with the default recipe: every check passes on it."""
    tmp = tmp_path_factory.mktemp("good")
    x, y = erp_signals(90)
    return context(write_arrays(tmp / "data", x, y, subjects(90)), tmp)


def test_shared_content_finds_copies_and_shifted_overlaps_only() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3, 256)) * 20
    x[5] = x[17]
    x[20, :, :150] = x[21, :, 106:]  # 150 shared samples at a shift of 106
    x[30] = 0
    x[31] = 0  # flat windows are alike but share no signal
    found = shared_content([x[:16], x[16:]], np.arange(40), 64, 0.02)
    assert found.pairs.tolist() == [[5, 17], [20, 21]]
    assert found.identical.tolist() == [True, False]
    clusters = found.clusters()
    assert clusters[5] == clusters[17] and clusters[20] == clusters[21]
    assert clusters[30] != clusters[31]


# --- Data ----------------------------------------------------------------------------------------


def test_sampling_rate(good, tmp_path) -> None:
    assert data.check_sample_rate(good).status == PASS
    x, y = erp_signals(60, rate=64)  # recorded at 64 Hz, band-passed to 40 Hz at 128 Hz
    check = data.check_sample_rate(
        context(write_arrays(tmp_path / "d", x, y, subjects(60), 64), tmp_path)
    )
    assert check.status == FAIL and "native Nyquist" in check.measured
    assert "preprocess.bandpass_high" in check.advice


def test_amplitude_scale_finds_volts_read_as_microvolts(good, tmp_path) -> None:
    assert data.check_amplitude(good).status == PASS
    x, y = erp_signals(60)
    volts = context(write_arrays(tmp_path / "d", x * 1e-6, y, subjects(60)), tmp_path)
    check = data.check_amplitude(volts)
    assert check.status == FAIL and "units: V" in check.advice


def test_flat_channels_names_the_dead_one(good, tmp_path) -> None:
    assert data.check_flat_channels(good).status == PASS
    x, y = erp_signals(60)
    x[:, 2] = 0.0
    check = data.check_flat_channels(
        context(write_arrays(tmp_path / "d", x, y, subjects(60)), tmp_path)
    )
    assert check.status == FAIL and "Pz" in check.measured and "C3" not in check.measured


def test_missing_values(good) -> None:
    assert data.check_missing_values(good).status == PASS
    # The generic readers refuse NaN; an HMS window keeps it. Plant one in the raw sample.
    signals = good.sample.signals.copy()
    signals[:, :, : SAMPLES * 3 // 4] = np.nan
    holed = copy.copy(good)
    holed.sample = RawWindows(
        signals, good.sample.sfreq, good.sample.channels, good.sample.positions
    )
    assert data.check_missing_values(holed).status == FAIL


def test_clipping(good, tmp_path) -> None:
    assert data.check_clipping(good).status == PASS
    x, y = erp_signals(60)
    clipped = context(write_arrays(tmp_path / "d", np.clip(x, -12, 12), y, subjects(60)), tmp_path)
    check = data.check_clipping(clipped)
    assert check.status == FAIL


def test_line_noise_warns_only_when_the_band_pass_keeps_it(tmp_path) -> None:
    x, y = erp_signals(60, rate=256)
    x += 30 * np.sin(2 * np.pi * 50 * np.arange(512) / 256).astype(np.float32)
    root = write_arrays(tmp_path / "d", x, y, subjects(60), 256)
    removed = data.check_line_noise(context(root, tmp_path))  # band-pass 0.5-40 Hz
    assert removed.status == PASS and "50 Hz" in removed.measured
    assert removed.plot is not None and removed.plot.stat().st_size > 1000
    kept = data.check_line_noise(
        context(root, tmp_path, "preprocess.sample_rate=256", "preprocess.bandpass_high=70")
    )
    assert kept.status == WARN and "bandpass_high below 45" in kept.advice


# --- Labels --------------------------------------------------------------------------------------


def test_class_balance(good, tmp_path) -> None:
    check = labels.check_class_balance(good)
    assert check.status == PASS and "0.500" in check.measured
    x, y = erp_signals(60)
    root = write_arrays(tmp_path / "d", x, y, subjects(60), classes=("std", "tgt", "novel"))
    check = labels.check_class_balance(context(root, tmp_path))
    assert check.status == FAIL and "novel" in check.measured


def test_prior_score_gives_the_numbers_to_beat(good, tmp_path) -> None:
    check = labels.check_prior_score(good)
    assert check.status == PASS and "balanced accuracy 0.500" in check.measured
    x, y = erp_signals(60)
    groups = subjects(60)
    y[groups == "s0"] = 0  # subject s0, alone in fold 0, has no target trial
    fold_of = {"s0": 0, "s1": 1, "s2": 1, "s3": 2, "s4": 2, "s5": 1}
    ctx = context(
        write_arrays(tmp_path / "d", x, y, groups), tmp_path, folds=epoch_folds(groups, fold_of)
    )
    assert labels.check_prior_score(ctx).status == WARN


# --- Split ---------------------------------------------------------------------------------------


def test_groups_across_folds(good, tmp_path) -> None:
    assert split.check_groups(good).status == PASS
    x, y = erp_signals(60)
    groups = subjects(60)
    folds = epoch_folds(groups, {"s0": 0, "s1": 0, "s2": 1, "s3": 1, "s4": 2, "s5": 2})
    folds.loc[folds["group"] == "s1", "fold"] = [1, 2, 0, 1, 2, 0, 1, 2, 0, 1]  # split subject
    ctx = context(write_arrays(tmp_path / "d", x, y, groups), tmp_path, folds=folds)
    check = split.check_groups(ctx)
    assert check.status == FAIL and "s1" in check.measured and "delete" in check.advice


def test_duplicate_windows_across_folds(good, tmp_path) -> None:
    assert split.check_shared_signal(good).status == PASS
    x, y = erp_signals(60)
    groups = subjects(60)
    x[1] = x[0]  # epochs of subjects s0 and s1, in folds 0 and 1
    fold_of = {"s0": 0, "s1": 1, "s2": 2, "s3": 0, "s4": 1, "s5": 2}
    ctx = context(
        write_arrays(tmp_path / "d", x, y, groups), tmp_path, folds=epoch_folds(groups, fold_of)
    )
    check = split.check_shared_signal(ctx)
    assert check.status == FAIL and "1 identical" in check.measured
    assert "epoch-0" in check.measured and "epoch-1" in check.measured


def test_labels_per_fold(good, tmp_path) -> None:
    assert split.check_fold_labels(good).status == PASS
    x, y = erp_signals(60)
    groups = np.where(y == 1, subjects(60), "s0")  # fold 0 (s0 alone) holds no target
    fold_of = {"s0": 0, "s1": 1, "s3": 2, "s5": 1}
    ctx = context(
        write_arrays(tmp_path / "d", x, y, groups), tmp_path, folds=epoch_folds(groups, fold_of)
    )
    assert split.check_fold_labels(ctx).status == WARN


# --- Model input ---------------------------------------------------------------------------------


def test_raw_input_scale(good, tmp_path) -> None:
    check = inputs.check_raw_input(good)
    assert check.status == PASS and "standardised" in check.measured
    x, y = erp_signals(60)
    root = write_arrays(tmp_path / "d", x, y, subjects(60))
    check = inputs.check_raw_input(context(root, tmp_path, "preprocess.standardize=false"))
    assert check.status == FAIL and "preprocess.standardize=true" in check.advice


def test_image_input_range(good, tmp_path) -> None:
    assert inputs.check_image_input(good) is None  # EEGNet reads no image
    ctx = context(
        Path(good.data.root), tmp_path, "model.backbone=effnetv2", "model.use_wavenet=false"
    )
    assert inputs.check_image_input(ctx).status == PASS
    images = np.asarray(ctx.cache.arrays["image"], np.float32) * 1e4
    ctx.cache = InputCache(ctx.cache.root, {"image": images})
    assert inputs.check_image_input(ctx).status == FAIL


def test_targets_must_be_distributions(good, tmp_path) -> None:
    assert inputs.check_targets(good).status == PASS
    x, y = erp_signals(60)
    ctx = context(write_arrays(tmp_path / "d", x, y, subjects(60)), tmp_path)
    ctx.rows.loc[3, ["std", "tgt"]] = 0.0  # a unit nobody labelled
    check = inputs.check_targets(ctx)
    assert check.status == FAIL and "epoch-3" in check.measured


# --- Learning ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_initial_loss(good) -> None:
    check = learning.check_initial_loss(good)
    assert check.status == PASS and "ln 2" in check.measured
    bad = copy.copy(good)
    model = good.model
    weights = list(good.initial_weights)
    kernel = [w.path for w in model.weights].index("logits/kernel")
    weights[kernel] = weights[kernel] * 1e3  # a head initialised a thousand times too large
    bad.initial_weights = weights
    assert learning.check_initial_loss(bad).status == FAIL


@pytest.mark.slow
def test_overfit_one_batch(good, tmp_path) -> None:
    check = learning.check_overfit_batch(good)
    assert check.status == PASS and check.plot.is_file()
    broken = context(Path(good.data.root), tmp_path)

    def no_gradient(y_true, y_pred):  # the right value, but nothing flows back
        return ops.sum(y_true * ops.stop_gradient(-ops.log(ops.clip(y_pred, 1e-7, 1.0))), -1)

    broken.loss = no_gradient
    check = learning.check_overfit_batch(broken)
    assert check.status == FAIL and "broken" in check.advice


@pytest.mark.slow
def test_shuffled_labels_stay_at_chance_unless_copies_cross_the_split(good, tmp_path) -> None:
    check = learning.check_shuffled_labels(good)
    assert check.status == PASS, check.line()
    # Four distinct trials, each copied into every subject: whatever label a trial gets, its
    # copies on the validation side carry it too.
    rng = np.random.default_rng(3)
    templates = 20 * rng.standard_normal((4, len(CHANNELS), SAMPLES)).astype(np.float32)
    trial = np.arange(60) % 4
    ctx = context(
        write_arrays(tmp_path / "d", templates[trial], trial // 2, subjects(60)), tmp_path
    )
    check = learning.check_shuffled_labels(ctx)
    assert check.status == FAIL and "labels leak" in check.advice


@pytest.mark.slow
def test_learning_rate_range(good, tmp_path) -> None:
    check = learning.check_learning_rate(good)
    assert check.status == PASS, check.line()
    assert check.plot.is_file()
    high = context(Path(good.data.root), tmp_path, "train.lr=5")
    check = learning.check_learning_rate(high)
    assert check.status == FAIL and "set train.lr=" in check.advice


@pytest.mark.slow
def test_gradient_norms(good) -> None:
    assert learning.check_gradients(good).status == PASS
    dead = copy.copy(good)
    weights = list(good.initial_weights)
    kernel = [w.path for w in good.model.weights].index("logits/kernel")
    weights[kernel] = np.zeros_like(weights[kernel])  # nothing reaches the layers below it
    dead.initial_weights = weights
    check = learning.check_gradients(dead)
    assert check.status == FAIL and "eegnet_temporal" in check.measured


def relu_model(ctx: Context, bias: float) -> keras.Model:
    raw = keras.Input(ctx.cache.arrays["raw"].shape[1:], name="raw")
    x = keras.layers.Flatten()(raw)
    x = keras.layers.Dense(
        8, activation="relu", bias_initializer=keras.initializers.Constant(bias), name="hidden"
    )(x)
    logits = keras.layers.Dense(len(ctx.data.classes), name="logits")(x)
    model = keras.Model(raw, keras.layers.Activation("softmax")(logits))
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss=ctx.loss)
    return model


@pytest.mark.slow
def test_dead_relu_units(good) -> None:
    assert learning.check_dead_relu(good).status == PASS  # EEGNet has none
    for bias, status in ((0.0, PASS), (-1e3, FAIL)):
        ctx = copy.copy(good)
        ctx.model = relu_model(good, bias)
        ctx.initial_weights = ctx.model.get_weights()
        check = learning.check_dead_relu(ctx)
        assert check.status == status and "hidden" in check.measured


@pytest.mark.slow
def test_input_reach_finds_pooling_that_skips_rows(good, tmp_path) -> None:
    assert learning.check_input_reach(good).status == PASS
    skipping = context(Path(good.data.root), tmp_path, "model.eegnet.pool1_stride=8")
    check = learning.check_input_reach(skipping)
    assert check.status == FAIL and "50%" in check.measured
    assert "eegnet_pool_1" in check.measured and "strides" in check.advice


# --- The command ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_command_reports_every_check_and_exits_0_with_fails(good, tmp_path, capsys) -> None:
    diagnose_main(
        [
            "--data-dir",
            str(good.data.root),
            f"data.cache_dir={tmp_path / 'cache'}",
            f"train.output_dir={tmp_path / 'out'}",
            "folds.n_folds=3",
            "train.batch_size=16",
            "preprocess.standardize=false",
            "model.eegnet.pool1_stride=8",
        ]
    )
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.split(" ")[0] in (PASS, WARN, FAIL)]
    assert len(lines) == 20  # every check but the image one
    assert "FAIL raw input scale" in out and "FAIL input reach" in out
    report = tmp_path / "out" / "eegnet" / "diagnose" / "report.md"
    text = report.read_text()
    assert "| FAIL | raw input scale |" in text and "![learning rate](lr_range.png)" in text
    for plot in ("lr_range.png", "overfit.png", "gradients.png", "spectrum.png"):
        assert (report.parent / plot).stat().st_size > 1000


def test_command_user_errors_exit_2(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        diagnose_main(["--data-dir", str(tmp_path / "missing")])
    assert exit_info.value.code == 2
    assert "data folder not found" in capsys.readouterr().err
