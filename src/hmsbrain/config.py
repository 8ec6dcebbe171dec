"""One typed configuration schema, loaded from YAML and overridden from the command line.

Every field has a default and a one-line ``help``. A YAML file or a ``section.key=value``
override that names an unknown key, or gives a value of the wrong type, is a :class:`ConfigError`
naming the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hmsbrain.atomic import write_text


class ConfigError(ValueError):
    """A configuration file or override that does not fit the schema."""


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e-3`` (no dot) as a string; ML configs write rates that way."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def _f(default: Any, help: str) -> Any:
    """A dataclass field with a default and its one-line meaning."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class DataConfig:
    data_dir: str = _f(
        "",
        "Data folder (the Kaggle HMS layout, or any layout of 'Your own EEG data' in the "
        "README), or demo:<name> (hms, emotiv, trials64, mindwave); empty means demo:hms.",
    )
    layout: str = _f(
        "auto", "auto, hms, folders, recordings, arrays or table; dataset.yaml may name it."
    )
    demo_dir: str = _f("data/demo", "Where the demo dataset is generated on first use.")
    demo_seed: int = _f(2024, "Seed of the demo dataset generator.")
    cache_dir: str = _f("outputs/cache", "Folder for folds and preprocessed inputs, per dataset.")
    storage: str = _f(
        "windows",
        "windows: cache every window's model inputs (fast for small data); recordings (HMS): "
        "store each recording once and cut windows at batch time (scales with hours of EEG).",
    )
    store_dtype: str = _f(
        "float16", "Sample type of the recording store: float16 (half the disk) or float32."
    )


@dataclass
class FoldConfig:
    n_folds: int = _f(5, "Number of patient-grouped folds.")
    seed: int = _f(42, "Seed of the fold split.")


@dataclass
class PreprocessConfig:
    sample_rate: float = _f(
        200.0, "Rate in Hz every signal is resampled to (polyphase) before anything else."
    )
    montage: str = _f(
        "auto",
        "double_banana (a 10-20 cap), identity or average (common average reference); auto: "
        "double_banana for a clinical 10-20 recording, identity otherwise.",
    )
    standardize: bool = _f(
        False,
        "Standardise each raw-branch channel with the mean and std of the training folds "
        "(a layer of the model, so export and prediction apply it too).",
    )
    spectrogram: str = _f(
        "cpu",
        "Where the image's mel spectrograms are computed: cpu (the input pipeline; cached "
        "with the windows) or graph (inside the model, from the clean montage: no CPU work on "
        "a GPU machine, and exported with the model).",
    )
    max_image_groups: int = _f(
        8, "Most spectrogram tiles in the image: channels are grouped by region beyond this."
    )
    window_seconds: float = _f(
        0.0, "Sliding-window length for prediction on unlabelled recordings; 0: the epochs'."
    )
    stride_seconds: float = _f(0.0, "Sliding-window stride; 0: half the window.")
    bandpass_low: float = _f(0.5, "Band-pass lower edge in Hz (zero-phase Butterworth).")
    bandpass_high: float = _f(20.0, "Band-pass upper edge in Hz.")
    filter_order: int = _f(4, "Butterworth order of the band-pass (doubled by filtfilt).")
    clip_uv: float = _f(1024.0, "Clip bipolar signals to +/- this many microvolts (artefacts).")
    scale_uv: float = _f(32.0, "Divide bipolar signals by this before the model sees them.")
    n_fft: int = _f(1024, "FFT size of the mel spectrogram.")
    win_length: int = _f(128, "STFT window length in samples (Hann).")
    n_mels: int = _f(128, "Mel bands per chain tile (image rows per tile).")
    n_frames: int = _f(256, "STFT frames per tile (image columns); hop = window // n_frames.")
    fmin: float = _f(0.0, "Lowest mel frequency in Hz.")
    fmax: float = _f(20.0, "Highest mel frequency in Hz.")
    top_db: float = _f(80.0, "Dynamic range kept below each signal's peak, in dB.")
    use_kaggle_spectrogram: bool = _f(
        True, "Append the Kaggle 10-minute spectrogram tiles beside the EEG tiles."
    )
    raw_downsample: int = _f(5, "Decimation factor of the raw montage for the 1D branch.")


@dataclass
class ModelConfig:
    backbone: str = _f(
        "effnetv2", "Registered image backbone, or 'wavenet' for the 1D branch alone."
    )
    effnetv2_size: str = _f("B0", "EfficientNetV2 size: B0, B1, B2, B3, S, M or L.")
    mobilenetv3_size: str = _f("large", "MobileNetV3 size: large or small.")
    weights: str = _f(
        "imagenet", "Backbone weights: 'imagenet', 'none', or a .h5/.weights.h5 path."
    )
    use_wavenet: bool = _f(True, "Join the WaveNet 1D branch to the image backbone (hybrid).")
    wavenet_filters: int = _f(32, "Channels of the WaveNet branch.")
    wavenet_dilations: list[int] = _f([1, 2, 4, 8], "Dilation rates of one WaveNet block.")
    wavenet_blocks: int = _f(3, "WaveNet blocks, each followed by 4x time pooling.")
    dropout: float = _f(0.2, "Dropout before the classification head.")
    bn_momentum: float = _f(
        0.0, "If > 0, BatchNorm momentum of every layer (lower suits short from-scratch runs)."
    )
    eegnet_f1: int = _f(8, "EEGNet: temporal filters.")
    eegnet_d: int = _f(2, "EEGNet: spatial filters per temporal filter (depth multiplier).")
    eegnet_f2: int = _f(16, "EEGNet: pointwise filters of the separable convolution.")
    eegnet_kernel_seconds: float = _f(0.5, "EEGNet: temporal kernel length in seconds.")
    eegnet_dropout: float = _f(0.25, "EEGNet: dropout after each block.")
    eegnet_pool1_stride: int = _f(
        0,
        "EEGNet: stride of the first pooling; 0 = its size, as published. A stride above the "
        "size skips samples (the classic broken model diagnose.py finds).",
    )
    shallow_filters: int = _f(40, "ShallowConvNet: temporal and spatial filters.")
    shallow_kernel_seconds: float = _f(0.1, "ShallowConvNet: temporal kernel in seconds.")
    shallow_pool_seconds: float = _f(0.3, "ShallowConvNet: mean-pooling window in seconds.")
    shallow_stride_seconds: float = _f(0.06, "ShallowConvNet: pooling stride in seconds.")
    shallow_dropout: float = _f(0.5, "ShallowConvNet: dropout before the classifier.")
    bandpower_bands: list[float] = _f(
        [1.0, 4.0, 8.0, 13.0, 20.0, 30.0, 45.0],
        "Band-power baseline: band edges in Hz (bands above the Nyquist rate are dropped).",
    )
    bandpower_cs: list[float] = _f(
        [1e-4, 1e-3, 1e-2, 1e-1, 1.0],
        "Band-power baseline: inverse L2 strengths of the classifier, the best chosen by "
        "log loss in 3 inner folds grouped by subject; one value: that one.",
    )


@dataclass
class TrainConfig:
    run_name: str = _f("", "Run folder name under output_dir; empty means the backbone name.")
    output_dir: str = _f("outputs", "Root of all run folders.")
    batch_size: int = _f(16, "Training batch size.")
    samples_per_eeg: int = _f(1, "Sub-windows drawn per EEG per epoch (random time shifts).")
    shift_seconds: float = _f(
        0.0,
        "data.storage=recordings: move each training window by up to this many seconds either "
        "way (a random time shift every step; the labelled 10 s centre stays inside for <= 20).",
    )
    workers: int = _f(
        0, "Input-pipeline threads preparing batches ahead of the model; 0: one per CPU."
    )
    stage1_epochs: int = _f(10, "Epochs of stage 1 (all EEGs).")
    stage2_epochs: int = _f(5, "Epochs of stage 2 (EEGs with at least stage2_min_votes votes).")
    stage2_min_votes: int = _f(10, "Vote threshold of stage 2 rows.")
    stage2_lr_scale: float = _f(0.3, "Peak learning rate of stage 2 relative to stage 1.")
    lr: float = _f(1e-3, "Peak learning rate (AdamW).")
    min_lr: float = _f(1e-6, "Learning rate at the end of each cosine decay.")
    weight_decay: float = _f(1e-2, "AdamW decoupled weight decay.")
    warmup_frac: float = _f(0.1, "Share of stage 1 steps spent warming the learning rate up.")
    swap_prob: float = _f(0.5, "Probability of the left/right hemisphere swap per sample.")
    time_masks: int = _f(2, "Time masks per image (SpecAugment).")
    freq_masks: int = _f(2, "Frequency masks per image (SpecAugment).")
    mask_frac: float = _f(0.1, "Largest mask width as a share of the image side.")
    mixup_prob: float = _f(0.5, "Probability that a batch is mixed up.")
    mixup_alpha: float = _f(0.4, "Beta(alpha, alpha) parameter of mixup.")
    val_batch_size: int = _f(64, "Batch size of validation and prediction.")
    tta: bool = _f(
        True,
        "Hemisphere-swap TTA for validation, OOF and test predictions alike (one setting, so "
        "blend weights are fitted on the kind of prediction that is submitted).",
    )
    loss: str = _f("auto", "auto (KL for soft labels, cross-entropy for hard ones), kl or ce.")
    label_smoothing: float = _f(0.0, "Label smoothing of hard-label cross-entropy.")
    class_weights: str = _f(
        "none", "none or balanced: weight hard-label samples by inverse class frequency."
    )
    select_metric: str = _f(
        "auto",
        "What picks the best epoch: kl (log loss) or balanced_accuracy; auto: kl for soft "
        "labels, balanced_accuracy for hard ones.",
    )
    baseline: bool = _f(
        True, "Fit the band-power baseline in the same folds and report it beside the CV."
    )
    select_min_votes: int = _f(
        0,
        "Validation EEGs that pick the best epoch and fit blend weights: 0 = all, N = those "
        "with at least N votes (top HMS teams scored EEGs with >= 10).",
    )
    seed: int = _f(42, "Seed of every random generator of a run (Python, numpy, Keras).")
    mixed_precision: str = _f("auto", "'auto' (mixed_float16 on a GPU), 'on' or 'off'.")
    strategy: str = _f(
        "none",
        "Several devices: mirrored (tf.distribute.MirroredStrategy, one host, any number of "
        "GPUs) or data_parallel (keras.distribution.DataParallel on the JAX backend, one or "
        "several hosts). batch_size is the global batch, split over the replicas.",
    )
    devices: list[str] = _f(
        [],
        "Devices of the strategy: mirrored, TensorFlow names (['/gpu:0', '/gpu:1']; empty: "
        "every GPU); data_parallel, Keras names (['gpu:0', 'gpu:1']; empty: every device of "
        "every process).",
    )


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    folds: FoldConfig = field(default_factory=FoldConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# --- Loading and overriding ----------------------------------------------------------------------


def _check_type(key: str, value: Any, annotation: Any) -> Any:
    """Return ``value`` converted to ``annotation``'s type, or raise naming ``key``."""
    origin = typing.get_origin(annotation)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_type, *_) = typing.get_args(annotation) or (Any,)
        return [_check_type(f"{key}[{i}]", v, item_type) for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(annotation):
            if option is type(None) and value is None:
                return None
            try:
                return _check_type(key, value, option)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: {value!r} is not of type {annotation}")
    if annotation is Any:
        return value
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        # YAML reads `run_name=2` as an int; a string field still means the text.
        return str(value)
    if not isinstance(value, annotation) or (annotation is int and isinstance(value, bool)):
        raise ConfigError(
            f"{key}: expected {annotation.__name__}, got {type(value).__name__} {value!r}"
        )
    return value


def _apply(obj: Any, updates: dict[str, Any], prefix: str = "") -> None:
    """Write a nested mapping into the dataclass tree ``obj``, checking every key and type."""
    if not isinstance(updates, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {updates!r}")
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in updates.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"unknown config key {dotted!r}; valid keys here: {sorted(names)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _apply(current, value, prefix=f"{dotted}.")
        else:
            setattr(obj, key, _check_type(dotted, value, hints[key]))


def parse_override(text: str) -> dict[str, Any]:
    """``"train.lr=1e-3"`` -> ``{"train": {"lr": 0.001}}``; the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    dotted, raw = text.split("=", 1)
    parts = dotted.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override {text!r} has an empty key")
    value: Any = _yaml(raw) if raw.strip() else ""
    for part in reversed(parts):
        value = {part: value}
    return value


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults, then the YAML file at ``path`` (if any), then ``key=value`` overrides."""
    cfg = Config()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            raw = _yaml(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        try:
            _apply(cfg, raw)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    for text in overrides or []:
        _apply(cfg, parse_override(text))
    return cfg


def config_to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config, so a run can be reproduced from its own folder."""
    write_text(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def config_differences(old: Config, new: Config) -> list[str]:
    """``section.key: old -> new`` for every key whose value differs."""

    def flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in tree.items():
            if isinstance(value, dict):
                out.update(flat(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out

    a, b = flat(config_to_dict(old)), flat(config_to_dict(new))
    return [
        f"{k}: {a.get(k)!r} -> {b.get(k)!r}"
        for k in sorted(a.keys() | b.keys())
        if a.get(k) != b.get(k)
    ]


def describe(cfg_type: type = Config, prefix: str = "") -> list[str]:
    """One line per field, ``section.key (default): meaning``, for ``--help`` texts."""
    hints = typing.get_type_hints(cfg_type)
    lines = []
    for f in dataclasses.fields(cfg_type):
        if dataclasses.is_dataclass(hints[f.name]):
            lines += describe(hints[f.name], prefix=f"{prefix}{f.name}.")
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        lines.append(f"{prefix}{f.name} ({default!r}): {f.metadata['help']}")
    return lines
