"""One typed configuration schema, loaded from YAML and overridden from the command line.

Every field has a default and a one-line ``help``. A YAML file or a ``section.key=value``
override that names an unknown key, or gives a value of the wrong type or outside a choice
field's ``Literal`` values, is a :class:`ConfigError` naming the key, so a typo never silently
falls back to a default.

The defaults describe a neutral run on any labelled EEG (128 Hz, EEGNet, one stage, no
hemisphere-specific augmentation). A recipe (``configs/*.yaml``) may start from another with a
top-level ``base:`` key; every HMS setting lives in :data:`HMS_RECIPE`, the base of the HMS
recipes under ``configs/hms/``.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from hmsbrain.atomic import write_text


class ConfigError(ValueError):
    """A configuration file or override that does not fit the schema."""


class _Loader(yaml.SafeLoader):
    """YAML 1.2 scalars where YAML 1.1 surprises: ``1e-3`` (no dot) is a float, not a string (ML
    configs write rates that way), and only true/false are booleans: YAML 1.1 reads ``on``,
    ``off``, ``yes`` and ``no`` as booleans, so ``train.mixed_precision=on`` would never reach
    its choice check as the word it is."""


_BOOL_TAG = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
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


# Choices of the string fields. Each is a Literal, so the config rejects any other value at load,
# naming the key; the modules reading a field need no check of their own.
Layout = Literal[
    "auto", "hms", "folders", "recordings", "arrays", "table", "epochs", "markers", "bids"
]
Storage = Literal["windows", "recordings"]
StoreDtype = Literal["float16", "float32"]
Montage = Literal["auto", "double_banana", "identity", "average"]
SpectrogramPlace = Literal["cpu", "graph"]
# The views of the signal the image can show side by side (hmsbrain.dsp.views registers exactly
# these; a test holds them together).
View = Literal["mel", "zoom", "stft", "stft_signals", "cwt", "raw"]
ImageBackbone = Literal["effnetv2", "resnet50v2", "mobilenetv3", "densenet201"]
RawBackbone = Literal["wavenet", "conformer", "eegnet", "shallow", "cnn1d", "bandpower"]
Backbone = Literal[ImageBackbone, RawBackbone]
EffNetV2Size = Literal["B0", "B1", "B2", "B3", "S", "M", "L"]
MobileNetV3Size = Literal["large", "small"]
Loss = Literal["auto", "kl", "ce"]
ClassWeights = Literal["none", "balanced"]
SelectOn = Literal["auto", "outer", "inner", "last"]
SelectMetric = Literal["auto", "kl", "balanced_accuracy"]
MixedPrecision = Literal["auto", "on", "off"]
Strategy = Literal["none", "mirrored", "data_parallel"]
Baseline = Literal["bandpower", "tangent"]

# Every valid model.backbone, without importing Keras: hmsbrain.models.imagenet registers the
# image ones and its backbone_names() must list exactly these (a test holds them together).
IMAGE_BACKBONES: tuple[str, ...] = typing.get_args(ImageBackbone)
RAW_BACKBONE_NAMES: tuple[str, ...] = typing.get_args(RawBackbone)
VIEW_NAMES: tuple[str, ...] = typing.get_args(View)
BACKBONE_NAMES: tuple[str, ...] = (*IMAGE_BACKBONES, *RAW_BACKBONE_NAMES)


@dataclass
class DataConfig:
    data_dir: str = _f(
        "",
        "Data folder (the Kaggle HMS layout, or any layout of the docs' Your own EEG "
        "tutorial), or demo:<name> (hms, emotiv, trials64, mindwave); empty means demo:hms.",
    )
    layout: Layout = _f("auto", "The data folder's layout; auto: dataset.yaml's, or detected.")
    demo_dir: str = _f("data/demo", "Where the demo dataset is generated on first use.")
    demo_seed: int = _f(2024, "Seed of the demo dataset generator.")
    cache_dir: str = _f("outputs/cache", "Folder for folds and preprocessed inputs, per dataset.")
    storage: Storage = _f(
        "windows",
        "windows: cache every window's model inputs (fast for small data); recordings (HMS): "
        "store each recording once and cut windows at batch time (scales with hours of EEG).",
    )
    store_dtype: StoreDtype = _f(
        "float16", "Sample type of the recording store: float16 (half the disk) or float32."
    )
    min_votes: list[int] = _f(
        [0, 10],
        "Training rows' vote threshold per stage, [stage 1, stage 2] (one value: both stages): "
        "a stage trains on the rows with at least this many votes (HMS: the sub-window's raters; "
        "1 for a hard label). Validation and CV always score every validation unit.",
    )
    dedup: bool = _f(
        False,
        "Training units: false, one per scoring unit (an HMS EEG, its target the sum of its "
        "sub-windows' votes); true, one per unit and vote pattern: the overlapping sub-windows "
        "of one EEG that share their votes collapse into one unit with that target, as top HMS "
        "teams trained. Scoring stays per EEG.",
    )


@dataclass
class FoldConfig:
    n_folds: int = _f(5, "Number of patient-grouped folds.")
    seed: int = _f(42, "Seed of the fold split.")


@dataclass
class PreprocessConfig:
    sample_rate: float = _f(
        128.0, "Rate in Hz every signal is resampled to (polyphase) before anything else."
    )
    montage: Montage = _f(
        "auto",
        "double_banana (a 10-20 cap), identity or average (common average reference); auto: "
        "double_banana for a clinical 10-20 recording, identity otherwise.",
    )
    standardize: bool = _f(
        True,
        "Standardise each raw-branch channel with the mean and std of the training folds "
        "(a layer of the model, so export and prediction apply it too).",
    )
    spectrogram: SpectrogramPlace = _f(
        "cpu",
        "Where the image's mel spectrograms are computed: cpu (the input pipeline; cached "
        "with the windows) or graph (inside the model, from the clean montage: no CPU work on "
        "a GPU machine, and exported with the model).",
    )
    views: list[View] = _f(
        ["mel"],
        "The views of the clean montage the image shows, side by side, each as one tile per "
        "channel group of n_mels rows: mel (dB mel spectrogram), zoom (mel of the central "
        "zoom_seconds at a finer time step), stft (log power STFT, per group), stft_signals "
        "(log power STFT of every signal, stacked in its group's tile), cwt (complex Morlet "
        "filter bank, log-spaced cwt_fmin..cwt_fmax), raw (the signals folded into rows).",
    )
    zoom_seconds: float = _f(10.0, "views=zoom: seconds at the centre of each window it shows.")
    cwt_fmin: float = _f(0.5, "views=cwt: lowest Morlet frequency in Hz (log-spaced rows).")
    cwt_fmax: float = _f(20.0, "views=cwt: highest Morlet frequency in Hz.")
    cwt_cycles: float = _f(
        7.0,
        "views=cwt: cycles per Morlet wavelet (Gaussian std = cycles / (2 pi f)); more "
        "cycles: finer frequency, coarser time.",
    )
    max_image_groups: int = _f(
        8, "Most spectrogram tiles in the image: channels are grouped by region beyond this."
    )
    window_seconds: float = _f(
        0.0, "Sliding-window length for prediction on unlabelled recordings; 0: the epochs'."
    )
    stride_seconds: float = _f(0.0, "Sliding-window stride; 0: half the window.")
    crop_seconds: float = _f(
        2.0,
        "Cropped training (generic epochs; HMS windows have their own sub-windows): cut each "
        "epoch into crops of this length; training draws a random crop, validation and "
        "prediction average an epoch's crops. An epoch this long or shorter is used whole. "
        "0: whole epochs.",
    )
    crop_stride_seconds: float = _f(0.25, "Step between an epoch's crops; 0: a quarter crop.")
    bandpass_low: float = _f(0.5, "Band-pass lower edge in Hz (zero-phase Butterworth).")
    bandpass_high: float = _f(40.0, "Band-pass upper edge in Hz.")
    filter_order: int = _f(4, "Butterworth order of the band-pass (doubled by filtfilt).")
    clip_uv: float = _f(1024.0, "Clip bipolar signals to +/- this many microvolts (artefacts).")
    scale_uv: float = _f(1.0, "Divide bipolar signals by this before the model sees them.")
    n_fft: int = _f(256, "FFT size of the mel spectrogram.")
    win_length: int = _f(64, "STFT window length in samples (Hann).")
    n_mels: int = _f(32, "Rows of every view's tile: mel bands, STFT bins, CWT frequencies.")
    n_frames: int = _f(32, "STFT frames per tile (image columns); hop = window // n_frames.")
    fmin: float = _f(0.0, "Lowest mel (and STFT) frequency in Hz.")
    fmax: float = _f(40.0, "Highest mel (and STFT) frequency in Hz.")
    top_db: float = _f(80.0, "Dynamic range kept below each signal's peak, in dB.")
    use_kaggle_spectrogram: bool = _f(
        False, "HMS: append the Kaggle 10-minute spectrogram tiles beside the EEG tiles."
    )
    raw_downsample: int = _f(1, "Decimation factor of the raw montage for the 1D branch.")


# One section per model: its fields are the keyword arguments of the model's builder in
# hmsbrain.models (the same names and defaults, which a test holds together).


@dataclass
class EEGNetConfig:
    f1: int = _f(8, "EEGNet: temporal filters.")
    d: int = _f(2, "EEGNet: spatial filters per temporal filter (depth multiplier).")
    f2: int = _f(16, "EEGNet: pointwise filters of the separable convolution.")
    kernel_seconds: float = _f(0.5, "EEGNet: temporal kernel length in seconds.")
    dropout: float = _f(0.25, "EEGNet: dropout after each block.")
    pool1_stride: int = _f(
        0,
        "EEGNet: stride of the first pooling; 0 = its size, as published. A stride above the "
        "size skips samples (the classic broken model diagnose.py finds).",
    )


@dataclass
class ShallowConfig:
    filters: int = _f(40, "ShallowConvNet: temporal and spatial filters.")
    kernel_seconds: float = _f(0.1, "ShallowConvNet: temporal kernel in seconds.")
    pool_seconds: float = _f(0.3, "ShallowConvNet: mean-pooling window in seconds.")
    stride_seconds: float = _f(0.06, "ShallowConvNet: pooling stride in seconds.")
    dropout: float = _f(0.5, "ShallowConvNet: dropout before the classifier.")


@dataclass
class CNN1DConfig:
    filters: int = _f(32, "cnn1d: filters of the first two blocks, doubled every second block.")
    blocks: int = _f(6, "cnn1d: convolution blocks, each followed by a 2x max pool.")
    kernel: int = _f(7, "cnn1d: convolution kernel in samples.")
    dropout: float = _f(0.1, "cnn1d: spatial dropout after each block.")


@dataclass
class WaveNetConfig:
    filters: int = _f(32, "WaveNet: channels of the branch.")
    dilations: list[int] = _f([1, 2, 4, 8], "WaveNet: dilation rates of one block.")
    blocks: int = _f(3, "WaveNet: blocks, each followed by 4x time pooling.")


@dataclass
class ConformerConfig:
    filters: int = _f(64, "Conformer: channels of every layer (a multiple of heads).")
    stem_layers: int = _f(4, "Conformer: depthwise-separable stem layers, each halving time.")
    stem_kernel: int = _f(7, "Conformer: depthwise kernel of the stem, in samples.")
    blocks: int = _f(3, "Conformer: Conformer blocks after the stem.")
    heads: int = _f(4, "Conformer: attention heads per block.")
    kernel: int = _f(15, "Conformer: depthwise kernel of each block's convolution module.")
    dropout: float = _f(0.1, "Conformer: dropout inside every block.")


@dataclass
class BandpowerConfig:
    bands: list[float] = _f(
        [1.0, 4.0, 8.0, 13.0, 20.0, 30.0, 45.0],
        "Band-power baseline: band edges in Hz (bands above the Nyquist rate are dropped).",
    )
    cs: list[float] = _f(
        [1e-4, 1e-3, 1e-2, 1e-1, 1.0],
        "Band-power baseline: inverse L2 strengths of the classifier, the best chosen by "
        "log loss in 3 inner folds grouped by subject; one value: that one.",
    )


@dataclass
class EffNetV2Config:
    size: EffNetV2Size = _f("B0", "EfficientNetV2 size.")


@dataclass
class MobileNetV3Config:
    size: MobileNetV3Size = _f("large", "MobileNetV3 size.")


@dataclass
class ModelConfig:
    backbone: Backbone = _f(
        "eegnet",
        "Image backbone (its spectrogram image, with the WaveNet branch if use_wavenet), or a "
        "raw-signal model (wavenet, conformer, eegnet, shallow; bandpower: the fitted baseline "
        "alone).",
    )
    weights: str = _f(
        "none", "Image backbone weights: 'imagenet', 'none', or a .h5/.weights.h5 path."
    )
    use_wavenet: bool = _f(True, "Join the WaveNet 1D branch to the image backbone (hybrid).")
    dropout: float = _f(0.25, "Dropout before the classification head.")
    bn_momentum: float = _f(
        0.9, "If > 0, BatchNorm momentum of every layer (lower suits short from-scratch runs)."
    )
    eegnet: EEGNetConfig = field(default_factory=EEGNetConfig)
    shallow: ShallowConfig = field(default_factory=ShallowConfig)
    cnn1d: CNN1DConfig = field(default_factory=CNN1DConfig)
    wavenet: WaveNetConfig = field(default_factory=WaveNetConfig)
    conformer: ConformerConfig = field(default_factory=ConformerConfig)
    bandpower: BandpowerConfig = field(default_factory=BandpowerConfig)
    effnetv2: EffNetV2Config = field(default_factory=EffNetV2Config)
    mobilenetv3: MobileNetV3Config = field(default_factory=MobileNetV3Config)


# Raw-signal augmentation (hmsbrain.training.augment): one section per transform, its
# probability and the transform's keyword arguments (the same names and defaults, which a test
# holds together); magnitudes after braindecode's defaults.
RawAugment = Literal[
    "time_shift",
    "amplitude_scale",
    "sign_flip",
    "time_reverse",
    "channel_dropout",
    "gaussian_noise",
    "ft_surrogate",
    "frequency_shift",
]
RAW_AUGMENT_NAMES: tuple[str, ...] = typing.get_args(RawAugment)


@dataclass
class TimeShiftConfig:
    probability: float = _f(0.5, "time_shift: share of samples rolled in time.")
    max_shift_seconds: float = _f(0.5, "time_shift: largest roll either way, in seconds.")


@dataclass
class AmplitudeScaleConfig:
    probability: float = _f(0.5, "amplitude_scale: share of samples rescaled.")
    low: float = _f(0.5, "amplitude_scale: smallest factor (log-uniform in [low, high]).")
    high: float = _f(2.0, "amplitude_scale: largest factor.")


@dataclass
class SignFlipConfig:
    probability: float = _f(0.5, "sign_flip: share of samples negated.")


@dataclass
class TimeReverseConfig:
    probability: float = _f(0.5, "time_reverse: share of samples reversed in time.")


@dataclass
class ChannelDropoutConfig:
    probability: float = _f(0.5, "channel_dropout: share of samples that lose channels.")
    p_drop: float = _f(0.2, "channel_dropout: probability that each of their channels is zeroed.")


@dataclass
class GaussianNoiseConfig:
    probability: float = _f(0.5, "gaussian_noise: share of samples given noise.")
    std: float = _f(0.1, "gaussian_noise: noise std relative to each channel's std.")


@dataclass
class FTSurrogateConfig:
    probability: float = _f(0.5, "ft_surrogate: share of samples given random phases.")
    phase_noise_magnitude: float = _f(
        1.0, "ft_surrogate: random phases uniform in [0, 2 pi x this), this in [0, 1]."
    )
    channel_indep: bool = _f(
        False, "ft_surrogate: draw phases per channel (true) or once per sample (keeps coherence)."
    )


@dataclass
class FrequencyShiftConfig:
    probability: float = _f(0.5, "frequency_shift: share of samples shifted in frequency.")
    max_delta_hz: float = _f(2.0, "frequency_shift: largest shift either way, in Hz.")


@dataclass
class AugmentParams:
    time_shift: TimeShiftConfig = field(default_factory=TimeShiftConfig)
    amplitude_scale: AmplitudeScaleConfig = field(default_factory=AmplitudeScaleConfig)
    sign_flip: SignFlipConfig = field(default_factory=SignFlipConfig)
    time_reverse: TimeReverseConfig = field(default_factory=TimeReverseConfig)
    channel_dropout: ChannelDropoutConfig = field(default_factory=ChannelDropoutConfig)
    gaussian_noise: GaussianNoiseConfig = field(default_factory=GaussianNoiseConfig)
    ft_surrogate: FTSurrogateConfig = field(default_factory=FTSurrogateConfig)
    frequency_shift: FrequencyShiftConfig = field(default_factory=FrequencyShiftConfig)


@dataclass
class TrainConfig:
    run_name: str = _f("", "Run folder name under output_dir; empty means the backbone name.")
    output_dir: str = _f("outputs", "Root of all run folders.")
    batch_size: int = _f(32, "Training batch size.")
    samples_per_eeg: int = _f(
        1,
        "Sub-windows drawn per EEG per epoch (random time shifts, or random crops); raised "
        "where min_steps_per_epoch asks for more.",
    )
    min_steps_per_epoch: int = _f(
        20,
        "Small data: draw each unit often enough that every epoch has at least this many "
        "batches (each draw a new crop or shift), so a run trains for at least epochs x this "
        "many steps; 0: samples_per_eeg alone.",
    )
    shift_seconds: float = _f(
        0.0,
        "data.storage=recordings: move each training window by up to this many seconds either "
        "way (a random time shift every step; the labelled 10 s centre stays inside for <= 20).",
    )
    workers: int = _f(
        0, "Input-pipeline threads preparing batches ahead of the model; 0: one per CPU."
    )
    stage1_epochs: int = _f(20, "Epochs of stage 1 (all EEGs).")
    stage2_epochs: int = _f(
        0, "Epochs of stage 2 (the rows with at least data.min_votes[1] votes); 0: no stage 2."
    )
    stage2_lr_scale: float = _f(0.3, "Peak learning rate of stage 2 relative to stage 1.")
    low_votes: int = _f(
        10,
        "A training unit with fewer votes than this is low-vote: its loss weight decays by "
        "train.vote_weight_decay and train.pseudo_from relabels it.",
    )
    vote_weight: float = _f(
        0.0,
        "Weight each training unit's loss by its votes to this power (0: unweighted; 1: by vote "
        "count), times the class weights; the weights of a stage average 1, so the learning rate "
        "keeps its meaning.",
    )
    vote_weight_decay: float = _f(
        1.0,
        "Per epoch, the loss weight of low-vote units (train.low_votes) is multiplied by this, in "
        "(0, 1]: decay^epoch at epoch 0, 1, ... (1: no decay).",
    )
    pseudo_from: str = _f(
        "",
        "Second round on soft labels: a finished run folder (every fold, the same folds file) "
        "whose out-of-fold predictions relabel the low-vote training units (train.low_votes): "
        "pseudo_mix x votes + (1 - pseudo_mix) x the OOF of the fold that held the EEG out. "
        "Validation targets and the CV stay the votes. Empty: no second round.",
    )
    pseudo_mix: float = _f(
        0.1, "Share of the votes in a pseudo target, in [0, 1] (top HMS teams: 0.1)."
    )
    lr: float = _f(2e-3, "Peak learning rate (AdamW).")
    min_lr: float = _f(1e-6, "Learning rate at the end of each cosine decay.")
    weight_decay: float = _f(1e-2, "AdamW decoupled weight decay.")
    warmup_frac: float = _f(0.05, "Share of stage 1 steps spent warming the learning rate up.")
    swap_prob: float = _f(
        0.0,
        "Probability of the left/right hemisphere swap per sample (0 by default: generic labels "
        "may not survive a mirror, e.g. left vs right hand imagery).",
    )
    time_masks: int = _f(0, "Time masks per image (SpecAugment).")
    freq_masks: int = _f(0, "Frequency masks per image (SpecAugment).")
    mask_frac: float = _f(0.1, "Largest mask width as a share of the image side.")
    mixup_prob: float = _f(0.0, "Probability that a batch is mixed up.")
    mixup_alpha: float = _f(0.4, "Beta(alpha, alpha) parameter of mixup.")
    augment: list[RawAugment] = _f(
        [],
        "Raw-signal augmentations of the raw input, applied in this order to every training "
        "batch after the hemisphere swap and before mixup (empty: none); any of "
        f"{', '.join(RAW_AUGMENT_NAMES)}.",
    )
    augment_params: AugmentParams = field(default_factory=AugmentParams)
    val_batch_size: int = _f(64, "Batch size of validation and prediction.")
    tta: bool = _f(
        False,
        "Hemisphere-swap TTA for validation, OOF and test predictions alike (one setting, so "
        "blend weights are fitted on the kind of prediction that is submitted).",
    )
    loss: Loss = _f("auto", "auto (KL for soft labels, cross-entropy for hard ones), kl or ce.")
    label_smoothing: float = _f(0.0, "Label smoothing of hard-label cross-entropy.")
    class_weights: ClassWeights = _f(
        "balanced", "none, or balanced: weight hard-label samples by inverse class frequency."
    )
    select_metric: SelectMetric = _f(
        "auto",
        "What picks the best epoch: kl (log loss) or balanced_accuracy; auto: kl for soft "
        "labels, balanced_accuracy for hard ones.",
    )
    baseline: list[Baseline] = _f(
        ["bandpower", "tangent"],
        "Classical baselines fitted in the same folds and reported beside the CV: bandpower "
        "(log band power per channel) and tangent (Riemannian tangent space of the channel "
        "covariance), each into a logistic regression whose L2 strength is chosen from "
        "model.bandpower.cs; [] fits none.",
    )
    select_on: SelectOn = _f(
        "auto",
        "Which units pick the best epoch: outer (the validation fold, which the CV then scores: "
        "optimistic on small data), inner (a grouped split of the training folds; the outer "
        "fold is scored once), last (no pick: the last epoch of the plan), or auto: last "
        "below 2,000 units, outer above (docs: motor-imagery tutorial).",
    )
    select_min_votes: int = _f(
        0,
        "Validation EEGs that pick the best epoch and fit blend weights: 0 = all, N = those "
        "with at least N votes (top HMS teams scored EEGs with >= 10).",
    )
    seed: int = _f(42, "Seed of every random generator of a run (Python, numpy, Keras).")
    mixed_precision: MixedPrecision = _f(
        "auto", "mixed_float16 (on), float32 (off), or mixed_float16 on a GPU only (auto)."
    )
    strategy: Strategy = _f(
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


# The portfolio's members (hmsbrain.training.portfolio): the classical ones are fitted in code
# (hmsbrain.models.classical lists the same names; a test holds them together), every other
# member is a network recipe, configs/members/<name>.yaml, applied over the run's config.
CLASSICAL_MEMBERS: tuple[str, ...] = ("bandpower_lr", "tangent_lr", "xdawn_lr", "features_gbt")
NETWORK_MEMBERS: tuple[str, ...] = ("eegnet", "eegnet_whole", "cnn1d")
PortfolioBlend = Literal["hill_climb", "weights", "best"]


@dataclass
class PortfolioConfig:
    members: list[str] = _f(
        [*CLASSICAL_MEMBERS, *NETWORK_MEMBERS],
        "Members trained in the same folds and blended (generic data without --backbone): "
        f"{', '.join(CLASSICAL_MEMBERS)} (whole epochs at the recording's rate) and network "
        "recipes of configs/members/ (eegnet on crops, eegnet_whole on whole epochs, cnn1d on "
        "windows); the class prior is always a member. [] trains model.backbone alone.",
    )
    budget_minutes: float = _f(
        14.0,
        "Time for the whole portfolio: classical members first, then each network in the "
        "order listed, shortened to fit (down to portfolio.min_epochs) or skipped, one log line "
        "each. 0: no limit.",
    )
    min_epochs: int = _f(5, "Fewest epochs the budget may shorten a network member to.")
    blend: PortfolioBlend = _f(
        "hill_climb",
        "How members are blended, fitted out of fold on calibrated members: hill_climb "
        "(Caruana's greedy selection with replacement, from the best member), weights "
        "(non-negative weights by SLSQP) or best (the best member alone).",
    )
    cs: list[float] = _f(
        [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0],
        "Inverse L2 strengths the classical members' logistic regressions choose from, by log "
        "loss in grouped inner folds.",
    )
    xdawn_filters: int = _f(4, "xdawn_lr: xDAWN spatial filters per class.")
    gbt_iterations: int = _f(200, "features_gbt: boosting iterations (trees per class).")
    gbt_learning_rate: float = _f(0.1, "features_gbt: learning rate (shrinkage).")
    gbt_leaves: int = _f(15, "features_gbt: leaves per tree.")
    gbt_min_leaf: int = _f(10, "features_gbt: fewest epochs in a leaf.")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    folds: FoldConfig = field(default_factory=FoldConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    portfolio: PortfolioConfig = field(default_factory=PortfolioConfig)


def model_kwargs(cfg: ModelConfig, name: str) -> dict[str, Any]:
    """The keyword arguments of model ``name``'s builder: its section of ``cfg`` (``model.eegnet``
    for eegnet), or none for a model without one."""
    section = getattr(cfg, name, None)
    return dataclasses.asdict(section) if dataclasses.is_dataclass(section) else {}


# --- Recipes ----------------------------------------------------------------------------------

# In a checkout (and an editable install) the recipes are the repository's configs/; a wheel
# ships them inside the package (pyproject.toml maps configs/ to hmsbrain/configs).
_SHIPPED_CONFIGS = Path(__file__).resolve().parent / "configs"
CONFIGS_DIR = (
    _SHIPPED_CONFIGS
    if _SHIPPED_CONFIGS.is_dir()
    else Path(__file__).resolve().parents[2] / "configs"
)
# Recipe names, relative to CONFIGS_DIR: code names these instead of paths.
GENERIC_RECIPE = "eeg_cpu.yaml"  # the CPU recipe for any EEG that is not HMS: the defaults
HMS_RECIPE = "hms/base.yaml"  # every HMS setting; the base of every HMS recipe
HMS_DEMO_RECIPE = "hms/demo_cpu.yaml"  # the CPU recipe for HMS data, the demo included
HMS_FULL_RECIPE = "hms/effnetv2.yaml"  # the full GPU recipe of the main backbone
BASE_KEY = "base"  # a recipe's top-level key naming the recipe it starts from
MEMBERS_DIR = "members"  # the portfolio's network member recipes, relative to CONFIGS_DIR


def recipe_path(name: str) -> Path:
    """The shipped recipe ``name`` (e.g. :data:`HMS_RECIPE`), as a path; ConfigError if absent."""
    path = CONFIGS_DIR / name
    if not path.is_file():
        raise ConfigError(f"no shipped recipe {name!r} under {CONFIGS_DIR}")
    return path


def member_recipes() -> dict[str, Path]:
    """The shipped network member recipes by name (``configs/members/<name>.yaml``)."""
    return {p.stem: p for p in sorted((CONFIGS_DIR / MEMBERS_DIR).glob("*.yaml"))}


def member_config(cfg: Config, name: str) -> Config:
    """``cfg`` with network member ``name``'s recipe applied over it."""
    recipes = member_recipes()
    if name not in recipes:
        raise ConfigError(
            f"portfolio.members: no member recipe {name!r} in {CONFIGS_DIR / MEMBERS_DIR}"
        )
    member = copy.deepcopy(cfg)
    for recipe, raw in _recipe_chain(recipes[name]):
        try:
            _apply(member, raw)
        except ConfigError as exc:
            raise ConfigError(f"{recipe}: {exc}") from None
    _check_values(member)
    return member


def hms_config(overrides: list[str] | None = None) -> Config:
    """The HMS settings (:data:`HMS_RECIPE`), then ``overrides``: what library code working on
    HMS data starts from, since the schema defaults describe generic EEG."""
    return load_config(recipe_path(HMS_RECIPE), overrides)


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
    if origin is Literal:
        choices = typing.get_args(annotation)
        # The type as well as the value: True == 1, and a YAML number is not a choice's text.
        if not any(type(value) is type(c) and value == c for c in choices):
            raise ConfigError(f"{key}: {value!r} is not one of {list(choices)}")
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


# Keys that moved, and where: a recipe or a run's saved config.yaml naming the old key is told
# the new one rather than handed the list of valid keys.
MOVED_KEYS = {
    "train.stage2_min_votes": "data.min_votes, one threshold per stage: [stage 1, stage 2]",
}


def _check_values(cfg: Config) -> None:
    """The ranges a type cannot state, checked once the whole config is read."""
    if len(cfg.data.min_votes) not in (1, 2) or min(cfg.data.min_votes) < 0:
        raise ConfigError(
            f"data.min_votes: expected 1 or 2 thresholds >= 0 ([stage 1, stage 2]), got "
            f"{cfg.data.min_votes}"
        )
    if cfg.train.vote_weight < 0:
        raise ConfigError(f"train.vote_weight: expected >= 0, got {cfg.train.vote_weight}")
    if not 0 < cfg.train.vote_weight_decay <= 1:
        raise ConfigError(
            "train.vote_weight_decay: expected a value in (0, 1], got "
            f"{cfg.train.vote_weight_decay}"
        )
    known = {*CLASSICAL_MEMBERS, *member_recipes()}
    unknown = [m for m in cfg.portfolio.members if m not in known]
    if unknown:
        raise ConfigError(
            f"portfolio.members: {unknown} not a member; valid: {sorted(known)} (a network "
            f"member is a recipe in {CONFIGS_DIR / MEMBERS_DIR})"
        )
    if not 0 <= cfg.train.pseudo_mix <= 1:
        raise ConfigError(
            f"train.pseudo_mix: expected a value in [0, 1], got {cfg.train.pseudo_mix}"
        )


def stage_min_votes(cfg: DataConfig, stage: int) -> int:
    """The vote threshold of stage ``stage`` (1 or 2) of ``data.min_votes``."""
    return cfg.min_votes[min(stage, len(cfg.min_votes)) - 1]


def _apply(obj: Any, updates: dict[str, Any], prefix: str = "") -> None:
    """Write a nested mapping into the dataclass tree ``obj``, checking every key and type."""
    if not isinstance(updates, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {updates!r}")
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in updates.items():
        dotted = f"{prefix}{key}"
        if dotted in MOVED_KEYS:
            raise ConfigError(f"{dotted} is now {MOVED_KEYS[dotted]}")
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


def _recipe_chain(path: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The recipe at ``path`` and the ones its ``base:`` keys name, the first base first; each
    with its settings, ``base:`` removed."""
    chain: list[tuple[Path, dict[str, Any]]] = []
    while True:
        if not path.is_file():
            named = f" (the base of {chain[-1][0]})" if chain else ""
            raise ConfigError(f"config file not found: {path}{named}")
        try:
            raw = _yaml(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping of sections, got {raw!r}")
        base = raw.pop(BASE_KEY, None)
        chain.append((path, raw))
        if base is None:
            return chain[::-1]
        if not isinstance(base, str) or not base:
            raise ConfigError(f"{path}: {BASE_KEY}: expected a file name, got {base!r}")
        # Relative to the recipe's own folder, so a recipe reads the same from any directory.
        path = (path.parent / base).resolve()
        if any(path == seen.resolve() for seen, _ in chain):
            files = " -> ".join(str(p) for p, _ in chain)
            raise ConfigError(f"{BASE_KEY}: cycle of recipes: {files} -> {path}")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults, then the YAML recipe at ``path`` (if any; its ``base:`` recipes first), then
    ``key=value`` overrides."""
    cfg = Config()
    for recipe, raw in _recipe_chain(Path(path)) if path is not None else []:
        try:
            _apply(cfg, raw)
        except ConfigError as exc:
            raise ConfigError(f"{recipe}: {exc}") from None
    for text in overrides or []:
        _apply(cfg, parse_override(text))
    _check_values(cfg)
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


def config_keys(cfg_type: type = Config, prefix: str = "") -> list[tuple[str, Any, str]]:
    """``(section.key, default, meaning)`` of every field, a choice field's choices in its
    meaning: what ``--help`` lists and docs/reference/config-keys.md is written from."""
    hints = typing.get_type_hints(cfg_type)
    keys = []
    for f in dataclasses.fields(cfg_type):
        if dataclasses.is_dataclass(hints[f.name]):
            keys += config_keys(hints[f.name], prefix=f"{prefix}{f.name}.")
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        meaning = f.metadata["help"]
        if typing.get_origin(hints[f.name]) is Literal:
            meaning += f" One of: {', '.join(typing.get_args(hints[f.name]))}."
        keys.append((f"{prefix}{f.name}", default, meaning))
    return keys


def describe(cfg_type: type = Config) -> list[str]:
    """One line per field, ``section.key (default): meaning``, for ``--help`` texts."""
    return [f"{key} ({default!r}): {meaning}" for key, default, meaning in config_keys(cfg_type)]
