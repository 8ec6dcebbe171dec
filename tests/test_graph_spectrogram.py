"""The in-graph spectrogram image (models.spectrogram) equals the CPU path (dsp.mel + dsp.image)
at the CPU demo and full HMS recipes and at an odd shape; the mel power before dB matches
librosa; the model survives a .keras round trip, mixed precision and ONNX export."""

from __future__ import annotations

from dataclasses import dataclass, replace

import keras
import librosa
import numpy as np
import pytest

from hmsbrain.config import PreprocessConfig, hms_config
from hmsbrain.dsp.image import build_image
from hmsbrain.dsp.mel import group_tiles, hop_length, mel_power
from hmsbrain.inference.export import PARITY_RTOL, export_model, to_onnx
from hmsbrain.inference.runtimes import onnx_session
from hmsbrain.models.spectrogram import MEL_LAYER, mel_image

IMAGE_ATOL = 1e-4  # image units: the top_db range spans [-1, 1]
MEL_RTOL = 1e-4  # relative to each spectrogram's peak power, as benchmark.relative_error
DOUBLE_BANANA = tuple(tuple(range(4 * k, 4 * k + 4)) for k in range(4))


@dataclass(frozen=True)
class Case:
    cfg: PreprocessConfig
    groups: tuple[tuple[int, ...], ...]
    n_channels: int
    n_samples: int


HMS = hms_config().preprocess
CASES = {
    "demo": Case(replace(HMS, n_mels=32, n_frames=64), DOUBLE_BANANA, 16, 10_000),
    "hms": Case(replace(HMS, n_mels=128, n_frames=256), DOUBLE_BANANA, 16, 10_000),
    # Unequal, non-consecutive groups (the CPU path's other branch), 128 Hz, a short epoch.
    "odd": Case(
        replace(HMS, sample_rate=128.0, n_fft=256, win_length=64, n_mels=32, n_frames=32),
        ((0, 5, 9), (1, 2), (3, 4, 6, 7), (8,), (10, 11, 12, 13)),
        14,
        256,
    ),
}


def montage(case: Case, n: int = 2, seed: int = 0) -> np.ndarray:
    """Noise plus a 2 Hz rhythm, channel gains spread over 100 dB so that the last tiles hit
    the top_db floor and the peak channel sets every other's reference, one channel flat (a
    disconnected electrode: zero power, the 1e-10 floor)."""
    rng = np.random.default_rng(seed)
    t = np.arange(case.n_samples) / case.cfg.sample_rate
    x = 40.0 * rng.standard_normal((n, case.n_channels, case.n_samples))
    x += 60.0 * np.sin(2 * np.pi * 2.0 * t + rng.uniform(0, 2 * np.pi, (n, case.n_channels, 1)))
    x *= np.logspace(0, -5, case.n_channels)[:, None]
    x[:, -1] = 0.0
    return np.clip(x, -case.cfg.clip_uv, case.cfg.clip_uv).astype(np.float32)


def image_model(case: Case) -> keras.Model:
    x = keras.Input((case.n_channels, case.n_samples), name="montage")
    return keras.Model(x, mel_image(x, case.cfg, case.groups, case.cfg.sample_rate))


def cpu_image(signals: np.ndarray, case: Case) -> np.ndarray:
    return build_image(group_tiles(signals, case.groups, case.cfg))


def relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    peak = reference.max(axis=(-2, -1), keepdims=True)
    return float((np.abs(ours - reference) / peak).max())


def librosa_power(signals: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """One ``librosa.feature.melspectrogram`` call per signal, cropped to ``n_frames``."""
    hop = hop_length(signals.shape[-1], cfg)
    out = np.empty((*signals.shape[:-1], cfg.n_mels, cfg.n_frames), np.float32)
    for index in np.ndindex(signals.shape[:-1]):
        out[index] = librosa.feature.melspectrogram(
            y=signals[index],
            sr=cfg.sample_rate,
            n_fft=cfg.n_fft,
            hop_length=hop,
            win_length=cfg.win_length,
            n_mels=cfg.n_mels,
            fmin=cfg.fmin,
            fmax=cfg.fmax,
        )[:, : cfg.n_frames]
    return out


@pytest.mark.parametrize("name", CASES)
def test_graph_image_equals_cpu_path(name: str) -> None:
    case = CASES[name]
    signals = montage(case)
    model = image_model(case)
    image = model.predict_on_batch(signals)
    expected = cpu_image(signals, case)
    assert (
        image.shape
        == expected.shape
        == (2, len(case.groups) * case.cfg.n_mels, case.cfg.n_frames, 3)
    )
    assert np.abs(image - expected).max() <= IMAGE_ATOL
    assert (expected == -1.0).any()  # the floor was exercised

    # The mel power before dB, from both paths, against librosa (the flat channel has none).
    reference = librosa_power(signals[:, :-1], case.cfg)
    assert relative_error(mel_power(signals[:, :-1], case.cfg), reference) <= MEL_RTOL
    power_model = keras.Model(model.inputs, model.get_layer(MEL_LAYER).output)
    # The graph's bands run high to low (the image's flip); librosa's low to high.
    graph_power = np.swapaxes(power_model.predict_on_batch(signals)[..., ::-1], -1, -2)
    assert relative_error(graph_power[:, :-1], reference) <= MEL_RTOL


def test_keras_round_trip_and_mixed_precision(tmp_path) -> None:
    case = CASES["odd"]
    signals = montage(case)
    model = image_model(case)
    path = tmp_path / "spectrogram.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(
        reloaded.predict_on_batch(signals), model.predict_on_batch(signals)
    )
    # Under mixed precision the spectrogram stays float32 (float16 would overflow).
    keras.config.set_dtype_policy("mixed_float16")
    try:
        mixed = image_model(case)
    finally:
        keras.config.set_dtype_policy("float32")
    image = mixed.predict_on_batch(signals)
    assert image.dtype == np.float32
    assert np.abs(image - cpu_image(signals, case)).max() <= IMAGE_ATOL


def test_onnx_export_parity(tmp_path) -> None:
    case = CASES["demo"]
    signals = montage(case, n=4, seed=1)
    x = keras.Input((case.n_channels, case.n_samples), name="montage")
    image = mel_image(x, case.cfg, case.groups, case.cfg.sample_rate)
    pooled = keras.layers.GlobalAveragePooling2D()(image)
    logits = keras.layers.Dense(6, name="logits")(pooled)
    model = keras.Model(x, keras.layers.Activation("softmax", name="probs")(logits))
    report = export_model(model, tmp_path / "model.onnx", {"montage": signals})
    assert report["inputs"] == ["montage"]
    assert report["parity"]["logits_rel_err"] <= PARITY_RTOL
    # Pooled logits average most differences away; the exported image itself must match too.
    to_onnx(keras.Model(x, image), tmp_path / "image.onnx")
    session = onnx_session(tmp_path / "image.onnx", providers=["CPUExecutionProvider"])
    (onnx_image,) = session.run(None, {"montage": signals})
    assert np.abs(onnx_image - cpu_image(signals, case)).max() <= IMAGE_ATOL


def test_short_epoch_window_is_clamped() -> None:
    """An epoch shorter than win_length is one window at most, as in dsp.mel.mel_power."""
    odd = CASES["odd"]
    case = replace(odd, cfg=replace(odd.cfg, win_length=512, n_frames=8))
    signals = montage(case)
    image = image_model(case).predict_on_batch(signals)
    assert np.abs(image - cpu_image(signals, case)).max() <= IMAGE_ATOL


def test_too_few_samples_for_the_frames() -> None:
    x = keras.Input((4, 16), name="montage")
    with pytest.raises(ValueError, match="cannot make 32 frames"):
        mel_image(x, CASES["odd"].cfg, ((0, 1, 2, 3),), 128.0)
