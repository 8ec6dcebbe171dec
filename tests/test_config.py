"""The configuration schema: typos and wrong types must fail loudly, never fall back to defaults.

A misspelt override that silently kept the default would make a run differ from what its
command line says, and nobody would notice until the numbers did not reproduce.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from hmsbrain.config import (
    BACKBONE_NAMES,
    GENERIC_RECIPE,
    HMS_RECIPE,
    IMAGE_BACKBONES,
    NETWORK_MEMBERS,
    RAW_BACKBONE_NAMES,
    BandpowerConfig,
    Baseline,
    Config,
    ConfigError,
    ConformerConfig,
    EEGNetConfig,
    EffNetV2Config,
    MobileNetV3Config,
    PreprocessConfig,
    ShallowConfig,
    WaveNetConfig,
    config_differences,
    config_to_dict,
    describe,
    hms_config,
    load_config,
    parse_override,
    recipe_path,
    save_config,
)

REPO = Path(__file__).resolve().parents[1]

# Frozen from the code before the config redesign (issue 17), under the new key names: the old
# schema defaults, which were the HMS settings, and per shipped recipe (old name, new name) the
# values its old file resolved to that differ from them. The redesign must change none.
HMS_RESOLVED: dict[str, object] = {
    "data.data_dir": "",
    "data.layout": "auto",
    "data.demo_dir": "data/demo",
    "data.demo_seed": 2024,
    "data.cache_dir": "outputs/cache",
    "data.storage": "windows",
    "data.store_dtype": "float16",
    # Data selection (issue 20): stage 2's threshold moved here from train.stage2_min_votes
    # (10, unchanged); no dedup.
    "data.min_votes": [0, 10],
    "data.dedup": False,
    "folds.n_folds": 5,
    "folds.seed": 42,
    "preprocess.sample_rate": 200.0,
    "preprocess.montage": "auto",
    "preprocess.standardize": False,
    "preprocess.spectrogram": "cpu",
    "preprocess.views": ["mel"],
    "preprocess.zoom_seconds": 10.0,
    "preprocess.cwt_fmin": 0.5,
    "preprocess.cwt_fmax": 20.0,
    "preprocess.cwt_cycles": 7.0,
    "preprocess.max_image_groups": 8,
    "preprocess.window_seconds": 0.0,
    "preprocess.stride_seconds": 0.0,
    "preprocess.crop_seconds": 0.0,
    "preprocess.crop_stride_seconds": 0.25,
    "preprocess.bandpass_low": 0.5,
    "preprocess.bandpass_high": 20.0,
    "preprocess.filter_order": 4,
    "preprocess.clip_uv": 1024.0,
    "preprocess.scale_uv": 32.0,
    "preprocess.n_fft": 1024,
    "preprocess.win_length": 128,
    "preprocess.n_mels": 128,
    "preprocess.n_frames": 256,
    "preprocess.fmin": 0.0,
    "preprocess.fmax": 20.0,
    "preprocess.top_db": 80.0,
    "preprocess.use_kaggle_spectrogram": True,
    "preprocess.raw_downsample": 5,
    "model.backbone": "effnetv2",
    "model.effnetv2.size": "B0",
    "model.mobilenetv3.size": "large",
    "model.weights": "imagenet",
    "model.use_wavenet": True,
    "model.wavenet.filters": 32,
    "model.wavenet.dilations": [1, 2, 4, 8],
    "model.wavenet.blocks": 3,
    "model.conformer.filters": 64,
    "model.conformer.stem_layers": 4,
    "model.conformer.stem_kernel": 7,
    "model.conformer.blocks": 3,
    "model.conformer.heads": 4,
    "model.conformer.kernel": 15,
    "model.conformer.dropout": 0.1,
    "model.dropout": 0.2,
    "model.bn_momentum": 0.0,
    "model.eegnet.f1": 8,
    "model.eegnet.d": 2,
    "model.eegnet.f2": 16,
    "model.eegnet.kernel_seconds": 0.5,
    "model.eegnet.dropout": 0.25,
    "model.eegnet.pool1_stride": 0,
    "model.shallow.filters": 40,
    "model.shallow.kernel_seconds": 0.1,
    "model.shallow.pool_seconds": 0.3,
    "model.shallow.stride_seconds": 0.06,
    "model.shallow.dropout": 0.5,
    "model.bandpower.bands": [1.0, 4.0, 8.0, 13.0, 20.0, 30.0, 45.0],
    "model.bandpower.cs": [0.0001, 0.001, 0.01, 0.1, 1.0],
    "train.run_name": "",
    "train.output_dir": "outputs",
    "train.batch_size": 16,
    "train.samples_per_eeg": 1,
    "train.min_steps_per_epoch": 0,
    "train.shift_seconds": 0.0,
    "train.workers": 0,
    "train.stage1_epochs": 10,
    "train.stage2_epochs": 5,
    "train.stage2_lr_scale": 0.3,
    # Vote weights and the second round (issue 20): off, so no recipe changed.
    "train.low_votes": 10,
    "train.vote_weight": 0.0,
    "train.vote_weight_decay": 1.0,
    "train.pseudo_from": "",
    "train.pseudo_mix": 0.1,
    "train.lr": 0.001,
    "train.min_lr": 1e-06,
    "train.weight_decay": 0.01,
    "train.warmup_frac": 0.1,
    "train.swap_prob": 0.5,
    "train.time_masks": 2,
    "train.freq_masks": 2,
    "train.mask_frac": 0.1,
    "train.mixup_prob": 0.5,
    "train.mixup_alpha": 0.4,
    # Raw-signal augmentation, added later: off (no names), so no recipe changed.
    "train.augment": [],
    "train.augment_params.time_shift.probability": 0.5,
    "train.augment_params.time_shift.max_shift_seconds": 0.5,
    "train.augment_params.amplitude_scale.probability": 0.5,
    "train.augment_params.amplitude_scale.low": 0.5,
    "train.augment_params.amplitude_scale.high": 2.0,
    "train.augment_params.sign_flip.probability": 0.5,
    "train.augment_params.time_reverse.probability": 0.5,
    "train.augment_params.channel_dropout.probability": 0.5,
    "train.augment_params.channel_dropout.p_drop": 0.2,
    "train.augment_params.gaussian_noise.probability": 0.5,
    "train.augment_params.gaussian_noise.std": 0.1,
    "train.augment_params.ft_surrogate.probability": 0.5,
    "train.augment_params.ft_surrogate.phase_noise_magnitude": 1.0,
    "train.augment_params.ft_surrogate.channel_indep": False,
    "train.augment_params.frequency_shift.probability": 0.5,
    "train.augment_params.frequency_shift.max_delta_hz": 2.0,
    "train.val_batch_size": 64,
    "train.tta": True,
    "train.loss": "auto",
    "train.label_smoothing": 0.0,
    "train.class_weights": "none",
    "train.select_metric": "auto",
    "train.baseline": ["bandpower"],
    "train.select_on": "outer",
    "train.select_min_votes": 0,
    "train.seed": 42,
    "train.mixed_precision": "auto",
    "train.strategy": "none",
    "train.devices": [],
}
RESOLVED_RECIPES = {
    ("demo_cpu.yaml", "hms/demo_cpu.yaml"): {
        "preprocess.n_mels": 32,
        "preprocess.n_frames": 64,
        "model.weights": "none",
        "model.wavenet.filters": 24,
        "model.bn_momentum": 0.9,
        "train.samples_per_eeg": 3,
        "train.stage1_epochs": 8,
        "train.stage2_epochs": 3,
        "train.lr": 0.002,
    },
    ("densenet201.yaml", "hms/densenet201.yaml"): {
        "data.storage": "recordings",
        "model.backbone": "densenet201",
        "model.wavenet.filters": 64,
        "train.shift_seconds": 5.0,
        "train.stage1_epochs": 15,
        "train.lr": 0.0003,
    },
    ("eeg_cpu.yaml", "eeg_cpu.yaml"): {
        "preprocess.crop_seconds": 2.0,
        "train.min_steps_per_epoch": 20,
        "train.select_on": "auto",
        "preprocess.sample_rate": 128.0,
        "preprocess.standardize": True,
        "preprocess.bandpass_high": 40.0,
        "preprocess.scale_uv": 1.0,
        "preprocess.n_fft": 256,
        "preprocess.win_length": 64,
        "preprocess.n_mels": 32,
        "preprocess.n_frames": 32,
        "preprocess.fmax": 40.0,
        "preprocess.use_kaggle_spectrogram": False,
        "preprocess.raw_downsample": 1,
        "model.backbone": "eegnet",
        "model.weights": "none",
        "model.dropout": 0.25,
        "model.bn_momentum": 0.9,
        "train.batch_size": 32,
        "train.stage1_epochs": 20,
        "train.stage2_epochs": 0,
        "train.lr": 0.002,
        "train.warmup_frac": 0.05,
        "train.swap_prob": 0.0,
        "train.time_masks": 0,
        "train.freq_masks": 0,
        "train.mixup_prob": 0.0,
        "train.tta": False,
        "train.class_weights": "balanced",
        "train.baseline": ["bandpower", "tangent"],
    },
    ("effnetv2.yaml", "hms/effnetv2.yaml"): {
        "data.storage": "recordings",
        "model.effnetv2.size": "B2",
        "model.wavenet.filters": 64,
        "train.batch_size": 32,
        "train.shift_seconds": 5.0,
        "train.stage1_epochs": 15,
    },
    ("mobilenetv3.yaml", "hms/mobilenetv3.yaml"): {
        "data.storage": "recordings",
        "model.backbone": "mobilenetv3",
        "model.wavenet.filters": 64,
        "train.batch_size": 64,
        "train.shift_seconds": 5.0,
        "train.stage1_epochs": 15,
    },
    ("resnet50v2.yaml", "hms/resnet50v2.yaml"): {
        "data.storage": "recordings",
        "model.backbone": "resnet50v2",
        "model.wavenet.filters": 64,
        "train.batch_size": 32,
        "train.shift_seconds": 5.0,
        "train.stage1_epochs": 15,
        "train.lr": 0.0005,
    },
    ("trials64_broken.yaml", "trials64_broken.yaml"): {
        "preprocess.crop_seconds": 2.0,
        "train.min_steps_per_epoch": 20,
        "train.select_on": "auto",
        "preprocess.sample_rate": 128.0,
        "preprocess.bandpass_high": 40.0,
        "preprocess.scale_uv": 1.0,
        "preprocess.n_fft": 256,
        "preprocess.win_length": 64,
        "preprocess.n_mels": 32,
        "preprocess.n_frames": 32,
        "preprocess.fmax": 40.0,
        "preprocess.use_kaggle_spectrogram": False,
        "preprocess.raw_downsample": 1,
        "model.backbone": "eegnet",
        "model.weights": "none",
        "model.dropout": 0.25,
        "model.bn_momentum": 0.9,
        "model.eegnet.pool1_stride": 8,
        "train.batch_size": 32,
        "train.stage1_epochs": 20,
        "train.stage2_epochs": 0,
        "train.lr": 1.0,
        "train.min_lr": 1.0,
        "train.warmup_frac": 0.05,
        "train.swap_prob": 0.0,
        "train.time_masks": 0,
        "train.freq_masks": 0,
        "train.mixup_prob": 0.0,
        "train.tta": False,
        "train.class_weights": "balanced",
        "train.baseline": ["bandpower", "tangent"],
    },
    ("wavenet.yaml", "hms/wavenet.yaml"): {
        "data.storage": "recordings",
        "model.backbone": "wavenet",
        "model.wavenet.filters": 64,
        "model.wavenet.blocks": 4,
        "train.batch_size": 64,
        "train.shift_seconds": 5.0,
        "train.stage1_epochs": 20,
    },
}


def _leaf_fields(cls: type = Config, prefix: str = "") -> list[str]:
    """Dotted names of every non-section field of the schema."""
    names = []
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            names += _leaf_fields(type(default), f"{prefix}{f.name}.")
        else:
            names.append(f"{prefix}{f.name}")
    return names


def test_defaults_are_a_neutral_generic_eeg_run():
    cfg = load_config()
    assert cfg == Config()
    assert cfg.data.data_dir == ""  # empty: the demo dataset
    assert (cfg.folds.n_folds, cfg.folds.seed) == (5, 42)
    p = cfg.preprocess
    assert (p.sample_rate, p.n_fft, p.win_length, p.n_mels, p.n_frames) == (128.0, 256, 64, 32, 32)
    assert (p.fmin, p.fmax, p.bandpass_low, p.bandpass_high) == (0.0, 40.0, 0.5, 40.0)
    assert p.use_kaggle_spectrogram is False and p.raw_downsample == 1 and p.standardize
    assert (cfg.model.backbone, cfg.model.weights) == ("eegnet", "none")
    t = cfg.train
    assert (t.stage2_epochs, t.swap_prob, t.mixup_prob, t.tta) == (0, 0.0, 0.0, False)
    # The generic CPU recipe is the defaults; the HMS settings are a recipe of their own.
    assert load_config(recipe_path(GENERIC_RECIPE)) == Config()
    assert hms_config() == load_config(recipe_path(HMS_RECIPE)) != Config()


def test_overrides_of_every_type():
    cfg = load_config(
        overrides=[
            "preprocess.n_mels=64",  # int
            "preprocess.fmax=25.5",  # float
            "preprocess.bandpass_high=18",  # an int where a float is expected is fine ...
            "preprocess.use_kaggle_spectrogram=true",  # bool
            "data.data_dir=/data/hms",  # str
            "data.demo_dir=2024",  # ... and a number where a string is expected is the text
            "folds.seed=1",
            "folds.seed=2",  # the last override wins
        ]
    )
    p = cfg.preprocess
    assert p.n_mels == 64 and type(p.n_mels) is int
    assert p.fmax == 25.5
    assert p.bandpass_high == 18.0 and type(p.bandpass_high) is float
    assert p.use_kaggle_spectrogram is True
    assert cfg.data.data_dir == "/data/hms"
    assert cfg.data.demo_dir == "2024"
    assert cfg.folds.seed == 2
    # Everything not overridden keeps its default.
    assert p.n_frames == PreprocessConfig().n_frames
    assert cfg.data.demo_seed == Config().data.demo_seed


def test_overrides_apply_after_the_yaml_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("preprocess:\n  n_mels: 32\n  n_frames: 64\nfolds:\n  n_folds: 4\n")
    cfg = load_config(path, ["preprocess.n_mels=48"])
    assert (cfg.preprocess.n_mels, cfg.preprocess.n_frames, cfg.folds.n_folds) == (48, 64, 4)


@pytest.mark.parametrize(
    "override, key",
    [
        ("preprocess.n_mel=64", "preprocess.n_mel"),
        ("preprocesss.n_mels=64", "preprocesss"),
        ("folds.n_folds.x=3", "folds.n_folds"),
    ],
)
def test_unknown_override_key_names_the_key(override, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_config(overrides=[override])


@pytest.mark.parametrize(
    "override, key",
    [
        ("preprocess.n_mels=abc", "preprocess.n_mels"),
        ("preprocess.n_mels=1.5", "preprocess.n_mels"),
        ("folds.n_folds=true", "folds.n_folds"),  # a bool is not an int here
        ("preprocess.fmax=high", "preprocess.fmax"),
        ("preprocess.use_kaggle_spectrogram=3", "preprocess.use_kaggle_spectrogram"),
        ("data.data_dir=[a, b]", "data.data_dir"),
        ("preprocess=3", "preprocess"),  # a whole section replaced by a value
    ],
)
def test_wrong_type_names_the_key(override, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_config(overrides=[override])


@pytest.mark.parametrize("override", ["preprocess.n_mels", "preprocess.=3", "=3"])
def test_malformed_override(override):
    with pytest.raises(ConfigError):
        load_config(overrides=[override])


def test_yaml_with_unknown_key_names_file_and_key(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("preprocess:\n  n_mels: 32\n  top_bd: 60\n")
    with pytest.raises(ConfigError, match=re.escape(str(path))) as err:
        load_config(path)
    assert "preprocess.top_bd" in str(err.value)


def test_yaml_with_wrong_type_names_file_and_key(tmp_path):
    path = tmp_path / "type.yaml"
    path.write_text("folds:\n  n_folds: five\n")
    with pytest.raises(ConfigError, match=re.escape(str(path))) as err:
        load_config(path)
    assert "folds.n_folds" in str(err.value)


def test_missing_or_invalid_yaml_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")
    path = tmp_path / "broken.yaml"
    path.write_text("preprocess: [unclosed\n")
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        load_config(path)


def test_empty_yaml_file_means_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_config(path) == Config()


def test_save_then_load_round_trips(tmp_path):
    cfg = load_config(
        overrides=[
            "preprocess.n_mels=40",
            "preprocess.fmax=22.5",
            "preprocess.use_kaggle_spectrogram=false",
            "data.data_dir=/x/y",
            "folds.seed=3",
        ]
    )
    path = tmp_path / "resolved.yaml"
    save_config(cfg, path)
    again = load_config(path)
    assert again == cfg
    assert again != Config()


# The ensemble members of other views and the 1D model (GPU), and a CPU demo of each.
VIEW_RECIPES = (
    "mel_zoom_effnetv2.yaml",
    "stft_effnetv2.yaml",
    "stft_resnet50v2.yaml",
    "stft_signals_effnetv2.yaml",
    "cwt_effnetv2.yaml",
    "cwt_densenet201.yaml",
    "raw_effnetv2.yaml",
    "conformer.yaml",
    "demo_zoom.yaml",
    "demo_stft.yaml",
    "demo_stft_signals.yaml",
    "demo_cwt.yaml",
    "demo_raw.yaml",
    "demo_conformer.yaml",
)


def test_shipped_configs_validate():
    """Every YAML the project ships must load against the current schema."""
    paths = sorted((REPO / "configs").glob("**/*.yaml"))
    # + hms/base.yaml, hms/full.yaml, the ensemble members and demos of more views, and the
    # portfolio's network members
    members = len(list((REPO / "configs" / "members").glob("*.yaml")))
    assert members == len(NETWORK_MEMBERS)
    assert len(paths) == len(RESOLVED_RECIPES) + 2 + len(VIEW_RECIPES) + members, paths
    for path in paths:
        load_config(path)


def test_describe_has_one_meaningful_line_per_field():
    lines = describe()
    leaves = _leaf_fields()
    assert len(lines) == len(leaves)
    pattern = re.compile(r"^(?P<key>[\w.]+) \((?P<default>.*)\): (?P<help>.+)$")
    keys = []
    for line in lines:
        match = pattern.match(line)
        assert match, line
        assert match["help"].strip(), line
        keys.append(match["key"])
    assert keys == leaves
    text = "\n".join(lines)
    assert "preprocess.n_mels (32): " in text
    assert "model.eegnet.pool1_stride (0): " in text and "model.wavenet.filters (32): " in text
    # A choice key lists its choices.
    assert re.search(r"^train\.loss \('auto'\): .* One of: auto, kl, ce\.$", text, re.M)
    assert "model.backbone ('eegnet'): " in text and "One of: effnetv2, " in text


@pytest.mark.parametrize("source", ["parse_override", "override", "yaml"])
def test_scientific_notation_floats(tmp_path, source):
    if source == "parse_override":
        assert parse_override("train.lr=1e-3") == {"train": {"lr": 0.001}}
        return
    if source == "override":
        cfg = load_config(overrides=["preprocess.bandpass_low=5e-1"])
    else:
        path = tmp_path / "sci.yaml"
        path.write_text("preprocess:\n  bandpass_low: 5e-1\n")
        cfg = load_config(path)
    assert cfg.preprocess.bandpass_low == 0.5


# --- Choice keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, value, choices",
    [
        ("train.loss", "foo", ["auto", "kl", "ce"]),
        ("train.class_weights", "inverse", ["none", "balanced"]),
        ("train.select_metric", "accuracy", ["auto", "kl", "balanced_accuracy"]),
        ("train.strategy", "ddp", ["none", "mirrored", "data_parallel"]),
        (
            "data.layout",
            "grid",
            [
                "auto",
                "hms",
                "folders",
                "recordings",
                "arrays",
                "table",
                "epochs",
                "markers",
                "bids",
            ],
        ),
        ("data.storage", "disk", ["windows", "recordings"]),
        ("data.store_dtype", "float64", ["float16", "float32"]),
        ("preprocess.montage", "bipolar", ["auto", "double_banana", "identity", "average"]),
        ("preprocess.spectrogram", "gpu", ["cpu", "graph"]),
        ("model.effnetv2.size", "B7", ["B0", "B1", "B2", "B3", "S", "M", "L"]),
        ("model.mobilenetv3.size", "tiny", ["large", "small"]),
        ("model.backbone", "vgg16", list(BACKBONE_NAMES)),
    ],
)
@pytest.mark.parametrize("source", ["override", "yaml"])
def test_a_value_outside_a_choice_key_is_an_error_at_load(tmp_path, source, key, value, choices):
    message = f"{key}: {value!r} is not one of {choices}"
    if source == "override":
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_config(overrides=[f"{key}={value}"])
        return
    *sections, name = key.split(".")
    text = "".join(f"{'  ' * i}{s}:\n" for i, s in enumerate(sections))
    path = tmp_path / "choice.yaml"
    path.write_text(f"{text}{'  ' * len(sections)}{name}: {value}\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: {message}")):
        load_config(path)


def test_every_choice_of_a_choice_key_loads():
    cfg = load_config(
        overrides=["train.loss=ce", "preprocess.spectrogram=graph", "model.effnetv2.size=S"]
    )
    assert (cfg.train.loss, cfg.preprocess.spectrogram, cfg.model.effnetv2.size) == (
        "ce",
        "graph",
        "S",
    )
    for backbone in BACKBONE_NAMES:
        assert load_config(overrides=[f"model.backbone={backbone}"]).model.backbone == backbone


@pytest.mark.parametrize("value", ["yes", "true", "fp16", "1"])
@pytest.mark.parametrize("source", ["override", "yaml"])
def test_mixed_precision_takes_only_its_words(tmp_path, source, value):
    """``yes`` (a YAML 1.1 boolean) or any other word is an error naming the key, never a
    silent float32 run."""
    if source == "override":
        with pytest.raises(ConfigError, match=r"^train\.mixed_precision: .* is not one of"):
            load_config(overrides=[f"train.mixed_precision={value}"])
        return
    path = tmp_path / "precision.yaml"
    path.write_text(f"train:\n  mixed_precision: {value}\n")
    with pytest.raises(ConfigError, match=r"train\.mixed_precision: .* is not one of"):
        load_config(path)


def test_on_and_off_are_words_and_only_true_and_false_are_booleans(tmp_path):
    """YAML 1.2 booleans: ``on``/``off`` reach the choice key as the words the help names, and a
    boolean key takes true/false only (``yes`` would be a string, so an error)."""
    for value in ("on", "off", "auto"):
        cfg = load_config(overrides=[f"train.mixed_precision={value}"])
        assert cfg.train.mixed_precision == value
    path = tmp_path / "words.yaml"
    path.write_text(
        "preprocess:\n  standardize: false\ntrain:\n  mixed_precision: on\n  tta: True\n"
    )
    cfg = load_config(path)
    assert (cfg.train.mixed_precision, cfg.train.tta, cfg.preprocess.standardize) == (
        "on",
        True,
        False,
    )
    with pytest.raises(ConfigError, match=r"train\.tta: expected bool, got str 'yes'"):
        load_config(overrides=["train.tta=yes"])


def test_baselines_are_a_list_of_names_both_by_default_and_band_power_for_hms():
    """``train.baseline`` names the baselines to fit; the old boolean, an unknown name or a
    bare name is an error naming the key. HMS keeps band power alone (a tangent space of
    16-channel 50 s windows on ~100k rows is slow)."""
    from hmsbrain.runs import BASELINE_LABELS

    assert Config().train.baseline == ["bandpower", "tangent"]
    assert hms_config().train.baseline == ["bandpower"]
    assert load_config(overrides=["train.baseline=[]"]).train.baseline == []
    assert load_config(overrides=["train.baseline=[tangent]"]).train.baseline == ["tangent"]
    for value, error in (
        ("false", "expected a list, got False"),
        ("[riemann]", r"train\.baseline\[0\]: 'riemann' is not one of"),
        ("tangent", "expected a list, got 'tangent'"),
    ):
        with pytest.raises(ConfigError, match=error):
            load_config(overrides=[f"train.baseline={value}"])
    # Every name the config accepts has its label in tables and reports.
    assert set(BASELINE_LABELS) == set(typing.get_args(Baseline))


def test_the_backbone_names_are_the_registered_models():
    """config.py lists the backbones without Keras; the registry must build exactly these."""
    from hmsbrain.models.registry import MODELS, registered

    assert sorted(registered()) == sorted(BACKBONE_NAMES)
    assert {n for n, s in MODELS.items() if s.reads == "image"} == set(IMAGE_BACKBONES)
    assert {n for n, s in MODELS.items() if s.reads == "raw"} == set(RAW_BACKBONE_NAMES)


def test_the_config_imports_no_deep_learning_framework():
    frameworks = "{'keras', 'tensorflow', 'jax'}"
    code = f"import sys, hmsbrain.config; print(sorted({frameworks} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO / "src"
    )
    assert out.stdout.strip() == "[]"


# --- Model sections ------------------------------------------------------------------------------


def _builders() -> dict[type, object]:
    from hmsbrain.models.conformer import conformer_features
    from hmsbrain.models.registry import MODELS
    from hmsbrain.models.wavenet import wavenet_features

    return {
        EEGNetConfig: MODELS["eegnet"].build,
        ShallowConfig: MODELS["shallow"].build,
        WaveNetConfig: wavenet_features,
        ConformerConfig: conformer_features,
        BandpowerConfig: MODELS["bandpower"].build,
        EffNetV2Config: MODELS["effnetv2"].build,
        MobileNetV3Config: MODELS["mobilenetv3"].build,
    }


def test_each_model_section_is_its_builders_keyword_arguments():
    """Same names and defaults: a builder called without the config behaves as the config's
    defaults say (``--help`` documents the section)."""
    for section, builder in _builders().items():
        keywords = {
            name: p.default
            for name, p in inspect.signature(builder).parameters.items()
            if p.kind is p.KEYWORD_ONLY
        }
        defaults = dataclasses.asdict(section())
        assert keywords.keys() == defaults.keys(), builder
        for name, value in defaults.items():
            expected = list(value) if isinstance(value, list) else value
            got = list(keywords[name]) if isinstance(keywords[name], tuple) else keywords[name]
            assert got == expected, (builder, name)


def test_model_sections_nest_and_merge(tmp_path):
    path = tmp_path / "sections.yaml"
    path.write_text("model:\n  wavenet:\n    filters: 16\n  eegnet:\n    f1: 4\n")
    cfg = load_config(path, ["model.wavenet.blocks=2", "model.bandpower.cs=[1.0]"])
    assert dataclasses.asdict(cfg.model.wavenet) == {
        "filters": 16,
        "dilations": [1, 2, 4, 8],
        "blocks": 2,
    }
    assert (cfg.model.eegnet.f1, cfg.model.eegnet.f2) == (4, 16)
    assert cfg.model.bandpower == BandpowerConfig(cs=[1.0])


@pytest.mark.parametrize(
    "override, key",
    [
        ("model.eegnet_f1=4", "model.eegnet_f1"),
        ("model.shallow_filters=20", "model.shallow_filters"),
        ("model.wavenet_filters=8", "model.wavenet_filters"),
        ("model.bandpower_cs=[1.0]", "model.bandpower_cs"),
        ("model.effnetv2_size=B2", "model.effnetv2_size"),
        ("model.mobilenetv3_size=small", "model.mobilenetv3_size"),
        ("model.wavenet.width=8", "model.wavenet.width"),
    ],
)
def test_old_flat_model_keys_are_unknown(override, key):
    with pytest.raises(ConfigError, match=re.escape(f"unknown config key {key!r}")) as err:
        load_config(overrides=[override])
    assert "valid keys here" in str(err.value)


# --- Recipes and their bases ---------------------------------------------------------------------


def test_a_base_is_applied_first_then_the_recipe_then_the_overrides(tmp_path, monkeypatch):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "root.yaml").write_text("train:\n  lr: 0.1\n  batch_size: 4\n")
    (tmp_path / "lib" / "mid.yaml").write_text("base: root.yaml\ntrain:\n  lr: 0.2\n")
    (tmp_path / "run.yaml").write_text("base: lib/mid.yaml\nfolds:\n  n_folds: 3\n")
    monkeypatch.chdir(tmp_path / "lib")  # a base is found from its recipe's folder, not the cwd
    cfg = load_config(tmp_path / "run.yaml", ["train.batch_size=8"])
    assert (cfg.train.lr, cfg.train.batch_size, cfg.folds.n_folds) == (0.2, 8, 3)
    assert load_config(tmp_path / "lib" / "mid.yaml").train.batch_size == 4


def test_a_cycle_of_bases_names_the_files(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle") as err:
        load_config(tmp_path / "a.yaml")
    assert "a.yaml" in str(err.value) and "b.yaml" in str(err.value)
    (tmp_path / "self.yaml").write_text("base: self.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "self.yaml")


def test_a_missing_or_malformed_base_names_the_files(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("base: absent.yaml\n")
    with pytest.raises(ConfigError, match="not found") as err:
        load_config(path)
    assert str(tmp_path / "absent.yaml") in str(err.value) and str(path) in str(err.value)
    path.write_text("base: [a, b]\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: base: expected a file name")):
        load_config(path)
    # An error in a base names the base's file.
    (tmp_path / "bad.yaml").write_text("train:\n  lr: fast\n")
    path.write_text("base: bad.yaml\n")
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path / 'bad.yaml'}: train.lr")):
        load_config(path)


def test_base_is_only_a_top_level_key_of_a_recipe(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  base: other.yaml\n")
    with pytest.raises(ConfigError, match=re.escape("unknown config key 'train.base'")):
        load_config(path)
    with pytest.raises(ConfigError, match="unknown config key 'base'"):
        load_config(overrides=["base=other.yaml"])


def test_a_saved_config_is_resolved_and_reads_back_identically(tmp_path):
    """The resume guard compares a run's saved config with the new one: both must agree."""
    cfg = load_config(recipe_path("hms/wavenet.yaml"), ["model.wavenet.filters=8"])
    path = tmp_path / "config.yaml"
    save_config(cfg, path)
    assert "base" not in path.read_text().split()[0::2]  # resolved: no base, every key
    again = load_config(path)
    assert again == cfg and config_differences(again, cfg) == []
    changed = load_config(path, ["model.wavenet.blocks=2"])
    assert config_differences(cfg, changed) == ["model.wavenet.blocks: 4 -> 2"]


def _flat(tree: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


# Sections added to the schema after the values above were frozen: the portfolio (issue 25).
ADDED_SINCE = ("model.cnn1d.", "portfolio.")


def _frozen(cfg: Config) -> dict[str, object]:
    """``cfg``'s keys as flat names, less the sections added since; every other new key fails."""
    flat = _flat(config_to_dict(cfg))
    added = {k for k in flat if k.startswith(ADDED_SINCE)}
    assert added and all(k not in HMS_RESOLVED for k in added)
    return {k: v for k, v in flat.items() if k not in added}


def test_the_hms_base_is_the_old_schema_defaults():
    assert _frozen(hms_config()) == HMS_RESOLVED
    assert hms_config().portfolio.members == []  # HMS trains one backbone at a time


@pytest.mark.parametrize(
    ("old", "new"), list(RESOLVED_RECIPES), ids=[n for _, n in RESOLVED_RECIPES]
)
def test_every_shipped_recipe_resolves_as_before_the_redesign(old, new):
    """Moving the HMS settings out of the defaults and the recipes onto bases changed no value:
    each recipe resolves to what its old file did (frozen from the code before the change),
    plus the generic recipe's later, deliberate change: 2 s crops and a floor of steps."""
    expected = {**HMS_RESOLVED, **RESOLVED_RECIPES[old, new]}
    assert _frozen(load_config(recipe_path(new))) == expected


# --- The command line picks the recipe after reading the overrides -----------------------------


def test_the_recipe_follows_the_data_dir_of_the_overrides(tmp_path):
    from hmsbrain.cli import DEFAULT_CONFIG, GENERIC_CONFIG, default_recipe

    assert default_recipe(["data.data_dir=demo:emotiv"]) == GENERIC_CONFIG
    assert default_recipe(["data.data_dir=demo:hms"]) == DEFAULT_CONFIG
    assert default_recipe([]) == DEFAULT_CONFIG  # empty: the HMS demo
    assert default_recipe([f"data.data_dir={tmp_path}"]) == GENERIC_CONFIG
    assert default_recipe([f"data.data_dir={tmp_path}", "data.layout=hms"]) == DEFAULT_CONFIG


def test_train_reads_the_data_dir_override_before_choosing_its_recipe(tmp_path, monkeypatch):
    """``train.py data.data_dir=demo:emotiv`` trains with the generic recipe, as
    ``--data-dir demo:emotiv`` does (it once got the HMS demo recipe)."""
    import hmsbrain.training.loop as loop
    import hmsbrain.training.portfolio as portfolio
    from hmsbrain.cli import GENERIC_CONFIG, train_main

    class TrainingStartedError(Exception):
        """Stops train_main where training would start."""

    seen = []

    def train_folds(cfg: Config, folds: object, *args: object, **kwargs: object) -> list[dict]:
        seen.append(cfg)
        raise TrainingStartedError

    monkeypatch.setattr(loop, "train_folds", train_folds)
    monkeypatch.setattr(portfolio, "train_portfolio", train_folds)  # the generic default
    overrides = ["data.data_dir=demo:emotiv", f"train.output_dir={tmp_path}"]
    for argv in (overrides, ["--data-dir", "demo:emotiv", f"train.output_dir={tmp_path}"]):
        with pytest.raises(TrainingStartedError):
            train_main(argv)
    assert seen[0] == seen[1] == load_config(GENERIC_CONFIG, overrides)
    assert seen[0].model.backbone == "eegnet"
