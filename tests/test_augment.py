"""Raw-signal augmentation: each transform does exactly what it says, its probability decides
how many samples it touches, the batch's seed decides everything else, and the config names
only registered transforms."""

from __future__ import annotations

import dataclasses
import inspect
import re

import numpy as np
import pytest

from hmsbrain.config import (
    RAW_AUGMENT_NAMES,
    AugmentParams,
    ConfigError,
    TrainConfig,
    load_config,
)
from hmsbrain.dsp.montage import choose_montage
from hmsbrain.training import augment as aug
from hmsbrain.training.batches import EpochBatches, StageData

RATE = 128.0


def _batch(seed: int = 0, n: int = 8, n_time: int = 256, channels: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, n_time, channels)).astype(np.float32)


def _params(name: str, probability: float, **magnitudes: float) -> AugmentParams:
    params = AugmentParams()
    section = getattr(params, name)
    setattr(params, name, dataclasses.replace(section, probability=probability, **magnitudes))
    return params


# --- The registry and the config agree -----------------------------------------------------------


def test_the_config_names_are_the_registered_transforms():
    assert set(aug.TRANSFORMS) == set(RAW_AUGMENT_NAMES)
    assert [f.name for f in dataclasses.fields(AugmentParams)] == list(RAW_AUGMENT_NAMES)


def test_each_section_is_its_transforms_keyword_arguments_and_a_probability():
    for name in RAW_AUGMENT_NAMES:
        keywords = {
            k: p.default
            for k, p in inspect.signature(aug.TRANSFORMS[name]).parameters.items()
            if p.kind is p.KEYWORD_ONLY
        }
        section = dataclasses.asdict(getattr(AugmentParams(), name))
        assert 0.0 < section.pop("probability") <= 1.0, name
        assert section == keywords, name


def test_an_unknown_transform_is_an_error_at_load_naming_the_key(tmp_path):
    message = "train.augment[1]: 'time_warp' is not one of"
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(overrides=["train.augment=[sign_flip, time_warp]"])
    path = tmp_path / "augment.yaml"
    path.write_text("train:\n  augment: [sign_flip, time_warp]\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: {message}")):
        load_config(path)
    with pytest.raises(
        ConfigError, match=re.escape("unknown config key 'train.augment_params.sign_flip.p'")
    ):
        load_config(overrides=["train.augment_params.sign_flip.p=1"])
    cfg = load_config(
        overrides=[
            "train.augment=[ft_surrogate, frequency_shift]",
            "train.augment_params.frequency_shift.max_delta_hz=1",
        ]
    )
    assert cfg.train.augment == ["ft_surrogate", "frequency_shift"]
    assert cfg.train.augment_params.frequency_shift.max_delta_hz == 1.0
    assert TrainConfig().augment == []  # off by default: every recipe trains as before


# --- Each transform, exactly ---------------------------------------------------------------------


def test_time_reverse_reverses():
    x = _batch()
    np.testing.assert_array_equal(aug.time_reverse(x, np.random.default_rng(0), RATE), x[:, ::-1])


def test_sign_flip_negates():
    x = _batch()
    np.testing.assert_array_equal(aug.sign_flip(x, np.random.default_rng(0), RATE), -x)


def test_channel_dropout_zeroes_whole_channels_and_keeps_the_rest():
    x = _batch(n=16, channels=8) + 10.0  # no sample is zero by itself
    out = aug.channel_dropout(x, np.random.default_rng(0), RATE, p_drop=0.5)
    dropped = (out == 0).all(axis=1)  # (samples, channels)
    kept = (out == x).all(axis=1)
    assert (dropped ^ kept).all()  # every channel either wholly zeroed or untouched
    assert 0.3 < dropped.mean() < 0.7


def test_time_shift_rolls_each_sample_by_the_drawn_amount():
    x = np.zeros((6, 256, 2), np.float32)
    x[:, 100, :] = 1.0  # a spike
    out = aug.time_shift(x, np.random.default_rng(3), RATE, max_shift_seconds=0.25)
    drawn = np.random.default_rng(3).integers(-32, 33, 6)  # 0.25 s at 128 Hz
    np.testing.assert_array_equal(out.argmax(axis=1), 100 + drawn[:, None] + np.zeros((1, 2)))
    assert len(set(drawn)) > 1
    for i, k in enumerate(drawn):
        np.testing.assert_array_equal(out[i], np.roll(x[i], k, axis=0))


def test_amplitude_scaling_scales_each_sample_by_the_drawn_factor():
    x = _batch()
    out = aug.amplitude_scale(x, np.random.default_rng(5), RATE, low=0.5, high=2.0)
    drawn = np.exp(np.random.default_rng(5).uniform(np.log(0.5), np.log(2.0), len(x)))
    np.testing.assert_allclose(out, x * drawn[:, None, None].astype(np.float32), rtol=1e-6)
    assert ((drawn >= 0.5) & (drawn <= 2.0)).all() and np.ptp(drawn) > 0.1
    with pytest.raises(ValueError, match="0 < low <= high"):
        aug.amplitude_scale(x, np.random.default_rng(5), RATE, low=0.0, high=2.0)


def test_gaussian_noise_has_the_requested_std_relative_to_each_channel():
    x = _batch(n=32, n_time=512) * np.array([1.0, 2.0, 5.0, 10.0], np.float32)
    out = aug.gaussian_noise(x, np.random.default_rng(0), RATE, std=0.1)
    noise = (out - x).astype(np.float64)
    np.testing.assert_allclose(noise.std(axis=(0, 1)), 0.1 * x.std(axis=(0, 1)), rtol=0.02)
    assert abs(noise.mean()) < 0.01


@pytest.mark.parametrize("channel_indep", [False, True])
def test_ft_surrogate_keeps_every_amplitude_spectrum_and_changes_the_signal(channel_indep):
    for n_time in (256, 255):  # the Nyquist bin of an even length stays real
        x = _batch(n_time=n_time)
        out = aug.ft_surrogate(x, np.random.default_rng(0), RATE, channel_indep=channel_indep)
        assert out.shape == x.shape and out.dtype == x.dtype
        before, after = np.fft.rfft(x, axis=1), np.fft.rfft(out, axis=1)
        np.testing.assert_allclose(np.abs(after), np.abs(before), atol=1e-4)
        assert np.abs(out - x).mean() > 0.5
        # One phase per frequency for all channels keeps the cross-spectra; per channel does not.
        cross = before[..., 0] * np.conj(before[..., 1])
        cross_after = after[..., 0] * np.conj(after[..., 1])
        assert np.allclose(cross_after, cross, atol=1e-3) is not channel_indep


def test_frequency_shift_moves_a_sine_by_the_drawn_frequency():
    n_time = 512  # 4 s at 128 Hz: a power of two, so nothing is padded
    t = np.arange(n_time) / RATE
    x = np.repeat(np.sin(2 * np.pi * 10.0 * t)[None, :, None], 5, axis=0).astype(np.float32)
    out = aug.frequency_shift(x, np.random.default_rng(2), RATE, max_delta_hz=3.0)
    drawn = np.random.default_rng(2).uniform(-3.0, 3.0, 5)
    n_fft = 64 * n_time  # zero padding: the peak to within 1/256 Hz
    freqs = np.fft.rfftfreq(n_fft, 1 / RATE)
    spectrum = np.abs(np.fft.rfft(out[..., 0] * np.hanning(n_time), n=n_fft, axis=1))
    np.testing.assert_allclose(freqs[spectrum.argmax(axis=1)], 10.0 + drawn, atol=0.02)
    assert np.ptp(drawn) > 0.5


# --- Probabilities and seeds, through augment_raw ------------------------------------------------


@pytest.mark.parametrize("name", RAW_AUGMENT_NAMES)
def test_probability_zero_leaves_the_batch_and_one_changes_it(name):
    x = _batch()
    out = aug.augment_raw(x.copy(), np.random.default_rng(0), [name], _params(name, 0.0), RATE)
    np.testing.assert_array_equal(out, x)
    out = aug.augment_raw(x.copy(), np.random.default_rng(0), [name], _params(name, 1.0), RATE)
    changed = (out != x).any(axis=(1, 2))
    # Dropout may spare every channel of a sample; every other transform changes each one.
    assert changed.all() if name != "channel_dropout" else changed.any()


def test_a_probability_is_the_share_of_samples_transformed():
    x = _batch(n=2000, n_time=4, channels=1)
    params = _params("sign_flip", 0.3)
    out = aug.augment_raw(x.copy(), np.random.default_rng(0), ["sign_flip"], params, RATE)
    flipped = (out == -x).all(axis=(1, 2))
    assert flipped.mean() == pytest.approx(0.3, abs=0.03)
    np.testing.assert_array_equal(out[~flipped], x[~flipped])


def test_a_probability_or_magnitude_out_of_range_is_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"train.augment_params.sign_flip.probability: 1.5"):
        aug.augment_raw(_batch(), rng, ["sign_flip"], _params("sign_flip", 1.5), RATE)
    with pytest.raises(ValueError, match=r"ft_surrogate.phase_noise_magnitude: 1.5 is not in"):
        aug.ft_surrogate(_batch(), rng, RATE, phase_noise_magnitude=1.5)


def test_the_same_seed_gives_the_same_batch_and_no_transform_draws_nothing():
    names = list(RAW_AUGMENT_NAMES)
    a = aug.augment_raw(_batch(), np.random.default_rng(7), names, AugmentParams(), RATE)
    b = aug.augment_raw(_batch(), np.random.default_rng(7), names, AugmentParams(), RATE)
    c = aug.augment_raw(_batch(), np.random.default_rng(8), names, AugmentParams(), RATE)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # No names, no draws: the batches of a run without raw augmentation are those of before.
    rng = np.random.default_rng(7)
    state = rng.bit_generator.state
    np.testing.assert_array_equal(
        aug.augment_raw(_batch(), rng, [], AugmentParams(), RATE), _batch()
    )
    assert rng.bit_generator.state == state


# --- In training batches -------------------------------------------------------------------------


class _Recordings:
    """A stand-in input cache: row i's raw input is a fixed random (time, channels) array."""

    def __init__(self, n: int) -> None:
        self.raw = _batch(seed=1, n=n, n_time=128, channels=3)

    def batch(self, rows: np.ndarray, shifts: np.ndarray | None = None) -> dict[str, np.ndarray]:
        return {"raw": self.raw[rows]}


def test_an_epoch_with_raw_augmentation_keeps_its_targets():
    n = 10
    targets = np.eye(3, dtype=np.float32)[np.arange(n) % 3]
    stage = StageData(np.arange(n), [np.array([i]) for i in range(n)], targets)
    cache, montage = _Recordings(n), choose_montage("identity", ("C3", "Cz", "C4"))
    cfg = TrainConfig(batch_size=4, min_steps_per_epoch=0, augment=list(RAW_AUGMENT_NAMES))
    batches = EpochBatches(stage, cache, ("raw",), cfg, [1, 0, 2], montage, raw_rate=RATE)
    resumed = EpochBatches(stage, cache, ("raw",), cfg, [1, 0, 2], montage, raw_rate=RATE)
    assert len(batches) == 3
    for i in range(len(batches)):
        (raw,), y = batches[i]
        pick = slice(4 * i, 4 * i + 4)
        np.testing.assert_array_equal(y, targets[batches.order[pick]])  # untouched
        clean = cache.raw[batches.rows[pick]]
        assert raw.shape == clean.shape and raw.dtype == np.float32
        assert not np.allclose(raw, clean)
        np.testing.assert_array_equal(resumed[i][0][0], raw)  # a resumed run sees the same data
    with pytest.raises(ValueError, match="needs the raw input's sample rate"):
        EpochBatches(stage, cache, ("raw",), cfg, [1, 0, 2], montage)[0]
