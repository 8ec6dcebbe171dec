"""EEG window -> model inputs: each step checked against a reference or an exact property.

The fast batched mel spectrogram replaces librosa, so it must equal librosa; the hemisphere swap
is a training augmentation, so it must commute with the whole pipeline (or it would teach the
model mislabelled lateralised patterns); NaN must never reach the model.
"""

from __future__ import annotations

import dataclasses
import warnings

import librosa
import numpy as np
import pytest
import scipy.signal

from hmsbrain.config import PreprocessConfig, hms_config
from hmsbrain.core.inputs import Batch
from hmsbrain.core.mirror import mirror_image, swap_batch
from hmsbrain.dsp.filters import bandpass, fill_nan
from hmsbrain.dsp.image import build_image
from hmsbrain.dsp.mel import mel_power
from hmsbrain.dsp.parallel import map_batch
from hmsbrain.dsp.pipeline import raw_branch as raw_signal
from hmsbrain.hms.constants import BIPOLAR_NAMES, CHAIN_NAMES, EEG_COLUMNS, SAMPLE_RATE
from hmsbrain.hms.inputs import row_inputs, window_inputs
from hmsbrain.hms.layout import HMSData
from hmsbrain.hms.preprocess import HMS_MONTAGE, bipolar_montage, clean_montage, eeg_tiles
from tests.conftest import mirrored_eeg

DEFAULT = hms_config().preprocess  # the HMS settings
# Every spectrogram parameter changed, and the band-pass edge kept below fmax.
OTHER = dataclasses.replace(
    DEFAULT, n_mels=64, n_frames=128, win_length=256, fmax=25.0, bandpass_high=18.0
)
SMALL = dataclasses.replace(DEFAULT, n_mels=32, n_frames=64)  # quick tiles for structural tests


def _librosa_mel(x: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """The public starter kernels' call, one signal at a time."""
    return librosa.feature.melspectrogram(
        y=x,
        sr=SAMPLE_RATE,
        n_fft=cfg.n_fft,
        hop_length=len(x) // cfg.n_frames,
        win_length=cfg.win_length,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
    )[:, : cfg.n_frames]


def _assert_matches_librosa(signals: np.ndarray, cfg: PreprocessConfig) -> None:
    ours = mel_power(signals, cfg)
    assert ours.shape == (*signals.shape[:-1], cfg.n_mels, cfg.n_frames)
    for index in np.ndindex(signals.shape[:-1]):
        reference = _librosa_mel(signals[index], cfg)
        error = np.abs(ours[index] - reference).max() / reference.max()
        assert error < 1e-4, (index, error)


def _lateral_windows(n: int, seed: int) -> np.ndarray:
    """Raw windows ``(n, 10000, 20)`` whose left hemisphere carries a 3 Hz rhythm the right lacks,
    so that a swap visibly changes the montage (a symmetric input would test nothing)."""
    rng = np.random.default_rng(seed)
    eeg = 10.0 * rng.standard_normal((n, 10_000, 20)).astype(np.float32)
    t = np.arange(10_000) / SAMPLE_RATE
    left = [EEG_COLUMNS.index(c) for c in ("Fp1", "F7", "T3", "F3", "C3")]
    eeg[:, :, left] += (60.0 * np.sin(2 * np.pi * 3.0 * t))[None, :, None]
    return eeg


def _mirrored_spectrogram(spec: np.ndarray) -> np.ndarray:
    """The Kaggle spectrogram windows ``(..., rows, 400)`` of the mirrored recording: its chain
    column blocks exchange LL <-> RL and LP <-> RP."""
    blocks = spec.reshape(*spec.shape[:-1], len(CHAIN_NAMES), -1)
    mirror = [CHAIN_NAMES.index(c) for c in ("RL", "LL", "RP", "LP")]
    return blocks[..., mirror, :].reshape(spec.shape)


def _swap_montage(montage: np.ndarray) -> np.ndarray:
    """What the swap augmentation and TTA do to a montage input (core/mirror.py)."""
    return swap_batch(Batch({"montage": montage}), HMS_MONTAGE)["montage"]


def _swap_tiles(tiles: np.ndarray) -> np.ndarray:
    """What they do to chain tiles ``(..., 4, n_mels, n_frames)``: the image's group bands."""
    return mirror_image(tiles, HMS_MONTAGE.group_mirror, axis=-3)


def _with_nan(eeg: np.ndarray) -> np.ndarray:
    """Windows with the kinds of gaps real files have: runs, a leading run, a dead channel."""
    eeg = eeg.copy()
    eeg[:, 1000:1600, 2] = np.nan
    eeg[:, :300, 5] = np.nan
    eeg[:, -50:, 11] = np.nan
    eeg[0, :, 12] = np.nan  # a whole channel missing
    return eeg


# --- (a) mel spectrogram == librosa -------------------------------------------------------------


@pytest.mark.parametrize("cfg", [DEFAULT, OTHER], ids=["default", "other"])
def test_mel_power_matches_librosa_on_random_signals(cfg):
    rng = np.random.default_rng(0)
    signals = (30.0 * rng.standard_normal((2, 2, 10_000))).astype(np.float32)  # batch dims kept
    _assert_matches_librosa(signals, cfg)


def test_mel_power_matches_librosa_on_other_lengths():
    """The hop follows the signal length (samples // n_frames), as in the starter kernels."""
    rng = np.random.default_rng(1)
    _assert_matches_librosa(rng.standard_normal((2, 6_001)).astype(np.float32), DEFAULT)


@pytest.mark.parametrize("win_length", [2, 3, 75, 128])
def test_mel_power_matches_librosa_for_odd_and_even_windows(win_length):
    """The DFT folded by the window's symmetry pairs each sample with its mirror image: for odd
    and even lengths (whose centre sample is its own mirror), down to two samples."""
    cfg = dataclasses.replace(DEFAULT, win_length=win_length)
    rng = np.random.default_rng(2)
    _assert_matches_librosa((30.0 * rng.standard_normal((2, 4_000))).astype(np.float32), cfg)


def test_a_one_sample_window_has_no_mel_spectrogram():
    with pytest.raises(ValueError, match="windows of 2 samples or more, not 1"):
        mel_power(np.zeros((1, 1), np.float32), DEFAULT)


@pytest.mark.parametrize("cfg", [DEFAULT, OTHER], ids=["default", "other"])
def test_mel_power_matches_librosa_on_real_montage(hms_sample_dir, cfg):
    eeg = HMSData(hms_sample_dir, "train").eeg_window(3)
    _assert_matches_librosa(clean_montage(eeg, cfg)[::3], cfg)  # 6 of the 16 signals


# --- (b) hemisphere swap ------------------------------------------------------------------------


def test_the_mirrored_recording_is_an_involution_that_mirrors_electrodes():
    """The reference every swap below is checked against."""
    eeg = _lateral_windows(1, seed=0)[0]
    swapped = mirrored_eeg(eeg)
    np.testing.assert_array_equal(mirrored_eeg(swapped), eeg)
    col = EEG_COLUMNS.index
    np.testing.assert_array_equal(swapped[:, col("Fp2")], eeg[:, col("Fp1")])
    np.testing.assert_array_equal(swapped[:, col("T3")], eeg[:, col("T4")])
    for midline in ("Fz", "Cz", "Pz", "EKG"):
        np.testing.assert_array_equal(swapped[:, col(midline)], eeg[:, col(midline)])


def test_swap_commutes_with_the_bipolar_montage():
    eeg = _lateral_windows(2, seed=1)
    montage = bipolar_montage(eeg)
    assert montage.shape == (2, 16, 10_000)
    np.testing.assert_array_equal(bipolar_montage(mirrored_eeg(eeg)), _swap_montage(montage))
    # Fp1-F7 (LL, first) and Fp2-F8 (RL, first) trade places.
    assert BIPOLAR_NAMES[0] == "Fp1-F7" and BIPOLAR_NAMES[4] == "Fp2-F8"
    np.testing.assert_array_equal(_swap_montage(montage)[:, 0], montage[:, 4])
    np.testing.assert_array_equal(_swap_montage(_swap_montage(montage)), montage)


def test_swap_tiles_maps_ll_rl_and_lp_rp():
    tiles = np.arange(2 * 4 * 3 * 5, dtype=np.float32).reshape(2, 4, 3, 5)
    swapped = _swap_tiles(tiles)
    chain = CHAIN_NAMES.index
    for a, b in (("LL", "RL"), ("LP", "RP")):
        np.testing.assert_array_equal(swapped[:, chain(a)], tiles[:, chain(b)])
        np.testing.assert_array_equal(swapped[:, chain(b)], tiles[:, chain(a)])
    np.testing.assert_array_equal(_swap_tiles(swapped), tiles)


def test_swap_commutes_with_the_whole_tile_pipeline():
    eeg = _lateral_windows(2, seed=2)
    tiles = eeg_tiles(eeg, SMALL)
    assert tiles.shape == (2, 4, SMALL.n_mels, SMALL.n_frames)
    # The input is lateralised, so the swap is not a no-op ...
    assert np.abs(_swap_tiles(tiles) - tiles).max() > 0.1
    # ... yet swapping the raw EEG or the finished tiles gives the same result.
    np.testing.assert_allclose(eeg_tiles(mirrored_eeg(eeg), SMALL), _swap_tiles(tiles), atol=1e-4)


def test_swapped_model_inputs_equal_the_pipeline_on_the_mirrored_eeg():
    """What TTA and the training augmentation do to a batch (swap_batch: image bands and raw
    channels) equals preprocessing the mirrored recording: the EEG with left and right
    electrodes exchanged, and its Kaggle spectrogram with LL <-> RL and LP <-> RP."""
    eeg = _lateral_windows(2, seed=3)
    spec = np.stack(_spec_windows(2, seed=4))
    spec[:, :, :100] *= 3.0  # a lateralised Kaggle spectrogram too
    batch = window_inputs(eeg, list(spec), SMALL)
    mirrored = window_inputs(mirrored_eeg(eeg), list(_mirrored_spectrogram(spec)), SMALL)
    swapped = swap_batch(batch, HMS_MONTAGE)
    for key in ("image", "raw"):
        assert np.abs(swapped[key] - batch[key]).max() > 0.1, f"{key}: the swap is a no-op here"
        np.testing.assert_allclose(swapped[key], mirrored[key], atol=1e-4, err_msg=key)


# --- (c) NaN filling ----------------------------------------------------------------------------


def test_fill_nan_interpolates_extends_and_zeroes():
    eeg = np.stack(
        [np.arange(100.0), np.linspace(-5.0, 5.0, 100), np.full(100, 3.0), np.arange(100.0)],
        axis=1,
    ).astype(np.float32)
    eeg[10:20, 0] = np.nan  # interior run: 9 ... 20 -> 10, 11, ..., 19 exactly
    eeg[:5, 1] = np.nan  # leading run -> first valid value
    eeg[-7:, 1] = np.nan  # trailing run -> last valid value
    eeg[:, 2] = np.nan  # dead channel -> zeros
    before = eeg.copy()

    out = fill_nan(eeg)

    assert out.dtype == np.float32 and not np.isnan(out).any()
    np.testing.assert_array_equal(out[:, 0], np.arange(100.0))
    np.testing.assert_array_equal(out[:5, 1], eeg[5, 1])
    np.testing.assert_array_equal(out[-7:, 1], eeg[-8, 1])
    np.testing.assert_array_equal(out[5:-7, 1], eeg[5:-7, 1])
    np.testing.assert_array_equal(out[:, 2], 0.0)
    np.testing.assert_array_equal(out[:, 3], eeg[:, 3])  # untouched channel
    np.testing.assert_array_equal(eeg, before)  # NaN-aware: the input was not modified


def test_fill_nan_interpolates_a_non_linear_signal_linearly():
    x = np.sin(np.linspace(0, 3, 50)).astype(np.float32)[:, None]
    x[20:30] = np.nan
    out = fill_nan(x)[:, 0]
    expected = x[19, 0] + (x[30, 0] - x[19, 0]) * np.arange(1, 11) / 11
    np.testing.assert_allclose(out[20:30], expected, rtol=1e-6)


# --- (d) band-pass ------------------------------------------------------------------------------


def _tone(freq: float) -> np.ndarray:
    t = np.arange(10_000) / SAMPLE_RATE
    return np.sin(2 * np.pi * freq * t).astype(np.float32)


MIDDLE = slice(2_000, 8_000)  # away from the filter's edge transients


def test_bandpass_passes_5hz_with_unit_gain_and_no_phase_shift():
    x = _tone(5.0)
    y = bandpass(x, DEFAULT)
    assert y.shape == x.shape
    # Zero phase: the output lies on top of the input, not a delayed copy of it.
    np.testing.assert_allclose(y[MIDDLE], x[MIDDLE], atol=1e-3)
    basis = np.exp(-2j * np.pi * 5.0 * np.arange(10_000)[MIDDLE] / SAMPLE_RATE)
    phase = np.angle((y[MIDDLE] * basis).sum() / (x[MIDDLE] * basis).sum())
    assert abs(phase) < 1e-3
    assert np.abs((y[MIDDLE] * basis).sum() / (x[MIDDLE] * basis).sum()) == pytest.approx(1, 1e-3)


@pytest.mark.parametrize("freq", [0.1, 50.0], ids=["drift", "mains"])
def test_bandpass_attenuates_drift_and_mains_by_more_than_20db(freq):
    x = _tone(freq)
    y = bandpass(x, DEFAULT)
    gain_db = 20 * np.log10(np.sqrt(np.mean(y[MIDDLE] ** 2) / np.mean(x[MIDDLE] ** 2)))
    assert gain_db < -20, gain_db


def test_bandpass_acts_on_the_last_axis_of_a_batch():
    rng = np.random.default_rng(3)
    batch = rng.standard_normal((2, 3, 10_000)).astype(np.float32)
    out = bandpass(batch, DEFAULT)
    np.testing.assert_allclose(out[1, 2], bandpass(batch[1, 2], DEFAULT), atol=1e-5)


def test_clean_montage_clips_artefacts():
    eeg = _lateral_windows(1, seed=4)
    eeg[0, 5000:5010, EEG_COLUMNS.index("Fp1")] += 50_000.0  # an electrode pop
    montage = clean_montage(eeg, DEFAULT)
    assert np.abs(montage).max() == pytest.approx(DEFAULT.clip_uv)
    assert np.isfinite(montage).all()


# --- (e) model inputs with NaN ------------------------------------------------------------------


def _spec_windows(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    specs = [rng.gamma(2.0, 3.0, (300, 400)).astype(np.float32) for _ in range(n)]
    specs[0][40:60] = np.nan  # missing rows, as in real files
    specs[-1][:, :100] = np.nan  # a whole chain missing
    return specs


@pytest.mark.parametrize("cfg", [DEFAULT, SMALL], ids=["default", "small"])
def test_window_inputs_with_nan_are_finite_and_shaped(cfg):
    eeg = _with_nan(_lateral_windows(2, seed=5))
    batch = window_inputs(eeg, _spec_windows(2, seed=6), cfg)
    assert batch["image"].shape == (2, 4 * cfg.n_mels, 2 * cfg.n_frames, 3)
    assert batch["raw"].shape == (2, 10_000 // cfg.raw_downsample, 16)
    assert batch["image"].dtype == np.float32 and batch["raw"].dtype == np.float32
    assert np.isfinite(batch["image"]).all() and np.isfinite(batch["raw"]).all()
    # EEG tiles are scaled to [-1, 1]: peak +1, top_db floor -1.
    eeg_part = batch["image"][:, :, : cfg.n_frames]
    assert eeg_part.min() >= -1 - 1e-6 and eeg_part.max() <= 1 + 1e-6
    # The grey image is repeated over the three colour channels.
    np.testing.assert_array_equal(batch["image"][..., 0], batch["image"][..., 2])


def test_window_inputs_without_kaggle_spectrogram():
    cfg = dataclasses.replace(SMALL, use_kaggle_spectrogram=False)
    batch = window_inputs(_with_nan(_lateral_windows(2, seed=7)), None, cfg)
    assert batch["image"].shape == (2, 4 * cfg.n_mels, cfg.n_frames, 3)
    assert np.isfinite(batch["image"]).all() and np.isfinite(batch["raw"]).all()
    with pytest.raises(ValueError, match="use_kaggle_spectrogram"):
        window_inputs(_lateral_windows(1, seed=7), None, SMALL)


def test_a_window_that_is_entirely_nan_still_gives_finite_inputs():
    eeg = np.full((1, 10_000, 20), np.nan, dtype=np.float32)
    spec = [np.full((300, 400), np.nan, dtype=np.float32)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy: mean of an all-NaN slice
        batch = window_inputs(eeg, spec, SMALL)
    assert np.isfinite(batch["image"]).all() and np.isfinite(batch["raw"]).all()
    np.testing.assert_array_equal(batch["raw"], 0.0)


def test_image_layout_follows_chain_order_with_high_frequency_on_top():
    """The Kaggle and EEG tiles must line up chain by chain in the image."""
    rng = np.random.default_rng(8)
    eeg_tile = rng.random((4, 3, 5)).astype(np.float32)
    kaggle_tile = rng.random((4, 3, 5)).astype(np.float32)
    image = build_image(eeg_tile, kaggle_tile)
    assert image.shape == (12, 10, 3)
    for c in range(4):
        rows = slice(3 * c, 3 * c + 3)
        np.testing.assert_array_equal(image[rows, :5, 0], eeg_tile[c, ::-1])
        np.testing.assert_array_equal(image[rows, 5:, 0], kaggle_tile[c, ::-1])


def test_raw_branch_is_the_scaled_decimated_clean_montage():
    eeg = _lateral_windows(1, seed=9)
    batch = window_inputs(eeg, None, dataclasses.replace(SMALL, use_kaggle_spectrogram=False))
    montage = clean_montage(eeg, SMALL)
    expected = scipy.signal.resample_poly(montage[0], 1, SMALL.raw_downsample, axis=-1)
    np.testing.assert_allclose(batch["raw"][0], expected.T / SMALL.scale_uv, atol=1e-5)


def test_raw_branch_decimation_does_not_alias():
    """30 Hz lies above the raw branch's 20 Hz Nyquist: keeping every 5th sample would fold it
    onto 10 Hz at full amplitude; the anti-alias filter must remove it, and keep 5 Hz."""
    t = np.arange(10_000) / SAMPLE_RATE
    cfg = dataclasses.replace(SMALL, scale_uv=1.0)
    for freq, kept in ((30.0, False), (5.0, True)):
        montage = np.tile(np.sin(2 * np.pi * freq * t), (16, 1)).astype(np.float32)
        raw = raw_signal(montage, cfg)[200:-200, 0]  # away from the edges
        amplitude = np.sqrt(2) * raw.std()
        if kept:
            assert amplitude == pytest.approx(1.0, abs=0.02)
        else:
            assert amplitude < 0.01, f"{freq} Hz leaks into the raw branch at {amplitude:.3f}"


# --- (f) acceptance on the real sample ----------------------------------------------------------


def test_real_sample_yields_finite_model_inputs(hms_sample_dir):
    cfg = hms_config().preprocess
    train = HMSData(hms_sample_dir, "train")
    batch = row_inputs(train, range(len(train)), cfg)
    assert batch["image"].shape == (9, 512, 512, 3)
    assert batch["raw"].shape == (9, 2000, 16)
    assert np.isfinite(batch["image"]).all() and np.isfinite(batch["raw"]).all()
    # Overlapping sub-windows of one EEG differ (offsets really moved the window).
    assert np.abs(batch["image"][0] - batch["image"][1]).max() > 0.1

    test = HMSData(hms_sample_dir, "test")
    test_batch = row_inputs(test, [0], cfg)
    assert test_batch["image"].shape == (1, 512, 512, 3)
    assert test_batch["raw"].shape == (1, 2000, 16)
    assert np.isfinite(test_batch["image"]).all() and np.isfinite(test_batch["raw"]).all()


def test_map_batch_equals_the_serial_call():
    eeg = _with_nan(_lateral_windows(5, seed=10))
    serial = eeg_tiles(eeg, SMALL)
    parallel = map_batch(lambda x: eeg_tiles(x, SMALL), eeg, workers=2)
    assert parallel.shape == serial.shape
    np.testing.assert_allclose(parallel, serial, atol=1e-5)


def test_map_batch_keeps_row_order():
    batch = np.arange(37.0).reshape(37, 1)
    np.testing.assert_array_equal(map_batch(lambda b: b * 2, batch, workers=3), batch * 2)
    np.testing.assert_array_equal(map_batch(lambda b: b * 2, batch, workers=1), batch * 2)
    np.testing.assert_array_equal(map_batch(lambda b: b * 2, batch[:1], workers=4), batch[:1] * 2)
