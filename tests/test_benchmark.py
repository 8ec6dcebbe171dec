"""The speed benchmark's reference path agrees with the fast path (no timing asserted here).

The benchmark's speedup only means something if both sides compute the same tiles; this keeps
the starter-kernel reference honest without timing anything.
"""

from __future__ import annotations

import numpy as np
import pytest

from hmsbrain.bench.eegnet import bench_eegnet
from hmsbrain.bench.preprocess import (
    MEL_RTOL,
    bench_preprocess,
    load_windows,
    relative_error,
    starter_mel_power,
    starter_tiles,
)
from hmsbrain.config import Config, hms_config
from hmsbrain.dsp.mel import mel_power
from hmsbrain.hms.layout import HMSData
from hmsbrain.hms.preprocess import clean_montage, eeg_tiles


def _demo_config(root) -> Config:
    return hms_config([f"data.data_dir={root}"])


def test_starter_tiles_agree_with_batched_tiles(small_demo):
    cfg = _demo_config(small_demo)
    eeg = load_windows(cfg, 2)
    assert eeg.shape == (2, 10_000, 20)
    ours = eeg_tiles(eeg, cfg.preprocess)
    reference = starter_tiles(eeg, cfg)
    assert ours.shape == reference.shape == (2, 4, 128, 256)
    assert np.abs(ours - reference).max() < 1e-3


def test_mel_power_agrees_with_starter_loop(small_demo):
    cfg = _demo_config(small_demo)
    montage = clean_montage(load_windows(cfg, 2), cfg.preprocess)
    error = relative_error(mel_power(montage, cfg.preprocess), starter_mel_power(montage, cfg))
    assert error < MEL_RTOL == 1e-4


def test_relative_error_is_relative_to_each_spectrogram_peak():
    reference = np.array([[[1.0, 4.0]], [[100.0, 50.0]]])
    ours = reference + np.array([[[0.4, 0.0]], [[0.0, 2.0]]])
    # 0.4 / 4 = 0.1 in the first spectrogram, 2 / 100 = 0.02 in the second.
    assert relative_error(ours, reference) == pytest.approx(0.1)


def test_load_windows_cycles_through_the_dataset(small_demo):
    cfg = _demo_config(small_demo)
    n = len(HMSData(small_demo, "train"))
    windows = load_windows(cfg, n + 1)
    assert windows.shape == (n + 1, 10_000, 20)
    np.testing.assert_array_equal(windows[n], windows[0])


def test_the_preprocess_benchmark_reports_its_spread_and_every_step(small_demo, capsys):
    speedup = bench_preprocess(_demo_config(small_demo), 2, 5)
    out = capsys.readouterr().out
    assert speedup > 0
    assert "5 repeats, in turns; median [min-max]" in out
    assert f"speedup over the starter at its best: {speedup:.1f} [" in out
    assert "speedup on one thread each: " in out
    for step in ("montage", "band-pass filter", "mel spectrogram", "dB and tiles", "image"):
        assert f"\n{step}" in out


def test_the_eegnet_benchmark_times_two_layers_that_compute_the_same_maps(capsys):
    """EEGNet's einsum against the paper's depthwise layer: equal maps first, then the spread."""
    speedup = bench_eegnet((4, 64, 8), repeats=5, sample_rate=128.0, calls=1)
    out = capsys.readouterr().out
    assert speedup > 0
    assert "4 windows x 64 samples x 8 electrodes, F1=8, D=2; maps equal within " in out
    assert f"einsum speedup over depthwise: {speedup:.1f} [" in out
