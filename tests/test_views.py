"""The views of the signal (``preprocess.views``): each equals a reference (scipy, librosa or a
direct loop), the hemisphere swap mirrors each, and each reaches the model through the
per-window cache and the recording store alike."""

from __future__ import annotations

import dataclasses

import librosa
import numpy as np
import pytest
import scipy.signal

from hmsbrain.config import VIEW_NAMES, ConfigError, PreprocessConfig, hms_config
from hmsbrain.core.inputs import IMAGE_INPUT
from hmsbrain.core.mirror import mirror_image
from hmsbrain.data.cache import StreamInputs, open_cache
from hmsbrain.data.sources import open_dataset
from hmsbrain.dsp.mel import power_tiles, power_to_db
from hmsbrain.dsp.views import (
    VIEWS,
    cwt_power,
    morlet_bank,
    signal_rows,
    stft_power,
    stft_transform,
    view_tiles,
    zoom_span,
)
from hmsbrain.hms.constants import SAMPLE_RATE
from hmsbrain.hms.preprocess import HMS_MONTAGE, clean_montage
from tests.conftest import mirrored_eeg
from tests.test_store import _cfg as full_recipe

GROUPS = HMS_MONTAGE.groups
# The demo's tile size: every view computed in well under a second.
SMALL = dataclasses.replace(hms_config().preprocess, n_mels=32, n_frames=64)
NEW_VIEWS = ("zoom", "stft", "stft_signals", "cwt", "raw")


def _montage(n: int = 1, seed: int = 0, samples: int = 10_000) -> np.ndarray:
    """Clean-looking montage ``(n, 16, samples)``: noise plus a 3 Hz rhythm on the left chains
    (so a swap and each view's rows change visibly)."""
    rng = np.random.default_rng(seed)
    x = 20.0 * rng.standard_normal((n, 16, samples)).astype(np.float32)
    t = np.arange(samples) / SAMPLE_RATE
    x[:, :8] += (80.0 * np.sin(2 * np.pi * 3.0 * t)).astype(np.float32)
    return x


def _view(name: str, **changes) -> PreprocessConfig:
    return dataclasses.replace(SMALL, views=[name], **changes)


def test_every_view_in_the_schema_is_registered() -> None:
    assert set(VIEWS) == set(VIEW_NAMES)


def test_stft_power_equals_a_direct_dft_of_each_windowed_frame() -> None:
    cfg = _view("stft", win_length=64)
    x = _montage(samples=2_000)[0, :3]
    ours = stft_power(x, cfg, cfg.n_mels)
    transform, first = stft_transform(SAMPLE_RATE, 64, 2_000 // 64, 32, 0.0, 20.0)
    # The rows step evenly from fmin to fmax.
    np.testing.assert_allclose(transform.f[first : first + 32], np.arange(32) * 20.0 / 32)
    hop, mfft = 2_000 // cfg.n_frames, transform.mfft
    window = scipy.signal.get_window("hann", 64)
    padded = np.pad(x.astype(np.float64), [(0, 0), (32, 64)])
    bins = np.arange(first, first + 32)
    for t in range(cfg.n_frames):
        frame = padded[:, t * hop : t * hop + 64] * window  # centred on sample t * hop
        dft = np.exp(-2j * np.pi * np.outer(np.arange(64), bins) / mfft)
        reference = np.abs(frame @ dft) ** 2
        np.testing.assert_allclose(ours[:, :, t], reference, rtol=1e-3, atol=1e-3 * ours.max())


def test_stft_signals_stacks_each_signals_power_in_its_chain_tile() -> None:
    cfg = _view("stft_signals", win_length=64)
    x = _montage()
    tiles = view_tiles(x, GROUPS, cfg)
    rows = signal_rows(GROUPS, cfg)
    assert rows == 8 and tiles.shape == (1, 4, 32, 64)
    db = 10 * np.log10(np.maximum(stft_power(x, cfg, rows), 1e-10))
    db = np.maximum(db - db.max(), -cfg.top_db)
    half = cfg.top_db / 2
    for g, group in enumerate(GROUPS):
        for k, signal in enumerate(group):
            expected = (db[0, signal] + half) / half
            np.testing.assert_allclose(
                tiles[0, g, k * rows : (k + 1) * rows], expected, atol=1e-4, err_msg=str(signal)
            )


def test_stft_too_short_an_fft_names_the_keys() -> None:
    with pytest.raises(ConfigError, match=r"preprocess\.n_mels.*preprocess\.win_length"):
        view_tiles(_montage(), GROUPS, _view("stft_signals", win_length=128))


def test_cwt_power_equals_a_direct_convolution_loop() -> None:
    cfg = _view("cwt", n_mels=6, n_frames=8)
    x = _montage(samples=2_000)[0, :2]
    ours = cwt_power(x, cfg)
    bank = morlet_bank(SAMPLE_RATE, 6, 0.5, 20.0, cfg.cwt_cycles).astype(np.complex128)
    half, hop = bank.shape[1] // 2, 2_000 // 8
    for s in range(2):
        for t in range(8):
            centre = t * hop
            # sum over m of x[m] * bank[centre - m + half], zeros beyond the signal
            reference = np.zeros(6, np.complex128)
            for m in range(max(0, centre - half), min(2_000, centre + half + 1)):
                reference += x[s, m] * bank[:, centre - m + half]
            np.testing.assert_allclose(ours[s, :, t], np.abs(reference) ** 2, rtol=1e-3)


def test_cwt_rows_are_log_spaced_morlets_of_unit_gain() -> None:
    """A sinusoid at a row's centre frequency comes out at its own amplitude in that row, and
    the row of the 3 Hz rhythm is where the power peaks."""
    cfg = _view("cwt")
    freqs = np.geomspace(0.5, 20.0, cfg.n_mels)
    t = np.arange(10_000) / SAMPLE_RATE
    tone = np.sin(2 * np.pi * freqs[20] * t)[None].astype(np.float32)
    power = cwt_power(tone, cfg)
    middle = power[0, :, 16:48]  # away from the window's edges
    assert np.abs(np.sqrt(middle[20]) - 0.5).max() < 0.01  # |sin| analytic amplitude 1/2
    assert middle.mean(axis=1).argmax() == 20


def test_raw_view_folds_each_signal_into_rows_of_consecutive_time() -> None:
    cfg = _view("raw")
    x = _montage()
    tiles = view_tiles(x, GROUPS, cfg)
    decimated = scipy.signal.resample_poly(x[0], 1, cfg.raw_downsample, axis=-1) / cfg.scale_uv
    rows, samples = signal_rows(GROUPS, cfg), decimated.shape[-1]
    cols = -(-samples // rows)
    assert tiles.shape == (1, 4, 32, cols)
    for g, group in enumerate(GROUPS):
        for k, signal in enumerate(group):
            for r in range(rows):
                for c in range(cols):
                    i = r * cols + c
                    expected = decimated[signal, i] if i < samples else 0.0
                    assert tiles[0, g, k * rows + r, c] == pytest.approx(expected, abs=1e-5)


def test_zoom_view_is_librosas_mel_of_the_central_seconds_alone() -> None:
    cfg = _view("zoom")
    x = _montage()
    start, keep = zoom_span(10_000, cfg)
    assert (start, keep) == (4_000, 2_000)  # seconds 20-30: the labelled centre
    centre = x[0, :, start : start + keep]
    reference = np.stack(
        [
            librosa.feature.melspectrogram(
                y=s,
                sr=SAMPLE_RATE,
                n_fft=cfg.n_fft,
                hop_length=keep // cfg.n_frames,
                win_length=cfg.win_length,
                n_mels=cfg.n_mels,
                fmin=cfg.fmin,
                fmax=cfg.fmax,
            )[:, : cfg.n_frames]
            for s in centre
        ]
    )
    tiles = view_tiles(x, GROUPS, cfg)
    np.testing.assert_allclose(tiles[0], power_tiles(reference, GROUPS, cfg), atol=2e-3)
    # Nothing outside the centre reaches it.
    moved = x.copy()
    moved[..., :start] = 0.0
    np.testing.assert_array_equal(view_tiles(moved, GROUPS, cfg), tiles)


def test_views_sit_side_by_side_in_the_order_named() -> None:
    x = _montage()
    both = view_tiles(x, GROUPS, dataclasses.replace(SMALL, views=["mel", "raw"]))
    mel = view_tiles(x, GROUPS, _view("mel"))
    raw = view_tiles(x, GROUPS, _view("raw"))
    np.testing.assert_array_equal(both, np.concatenate([mel, raw], axis=-1))
    with pytest.raises(ConfigError, match=r"preprocess\.views"):
        view_tiles(x, GROUPS, dataclasses.replace(SMALL, views=[]))


@pytest.mark.parametrize("name", NEW_VIEWS)
def test_the_hemisphere_swap_mirrors_every_view(name) -> None:
    """Views of the mirrored recording == the mirrored views, so the swap augmentation and TTA
    stay truthful for each view."""
    cfg = _view(name, win_length=64)
    rng = np.random.default_rng(3)
    eeg = 10.0 * rng.standard_normal((10_000, 20)).astype(np.float32)
    eeg[:, :4] += (60.0 * np.sin(2 * np.pi * 3.0 * np.arange(10_000) / SAMPLE_RATE))[:, None]
    tiles = view_tiles(clean_montage(eeg, cfg), GROUPS, cfg)
    mirrored = view_tiles(clean_montage(mirrored_eeg(eeg), cfg), GROUPS, cfg)
    swapped = mirror_image(tiles, HMS_MONTAGE.group_mirror, axis=-3)  # what swap and TTA do
    assert np.abs(tiles - swapped).max() > 0.05  # not symmetric
    np.testing.assert_allclose(mirrored, swapped, atol=1e-4)


def _views_cfg(data_dir, tmp_path, *extra: str):
    views = "preprocess.views=[mel, zoom, stft, cwt, raw]"
    return full_recipe(
        data_dir, tmp_path, views, "preprocess.n_mels=32", "preprocess.n_frames=32", *extra
    )


def test_every_view_streams_from_the_store_as_the_per_window_path(hms_sample_dir, tmp_path):
    """The real train EEG: the store (float32) gives the per-window image of every view."""
    per_window = open_dataset(_views_cfg(hms_sample_dir, tmp_path, "data.storage=windows"), "train")
    stored = open_dataset(
        _views_cfg(hms_sample_dir, tmp_path, "data.storage=recordings", "data.store_dtype=float32"),
        "train",
    )
    rows = np.arange(len(per_window))
    ref = per_window.inputs(rows, (IMAGE_INPUT,))[IMAGE_INPUT]
    got = StreamInputs(stored, (IMAGE_INPUT,)).batch(rows)[IMAGE_INPUT]
    # 4 chains x 32 rows; mel, zoom, stft, cwt 32 columns each, raw 2000 / 8 rows, Kaggle 32.
    assert ref.shape == got.shape == (9, 128, 4 * 32 + 250 + 32, 3)
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_every_view_is_cached_per_window(tiny_kaggle, tmp_path):
    cfg = hms_config(
        [
            f"data.data_dir={tiny_kaggle.root}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "preprocess.n_mels=16",
            "preprocess.n_frames=16",
            "preprocess.win_length=32",
            "preprocess.views=[zoom, stft_signals, cwt, raw]",
        ]
    )
    data = open_dataset(cfg, "train")
    cache = open_cache(data, cfg, (IMAGE_INPUT,))
    rows = np.arange(len(data))
    direct = data.inputs(rows, (IMAGE_INPUT,))[IMAGE_INPUT]
    np.testing.assert_allclose(
        cache.batch(rows)[IMAGE_INPUT], direct, atol=2e-3 * np.abs(direct).max()
    )
    # Another view is another cache.
    cfg.preprocess.views = ["mel"]
    assert open_cache(data, cfg, (IMAGE_INPUT,)).root != cache.root


@pytest.mark.slow
@pytest.mark.parametrize("views", [["zoom", "stft"], ["stft_signals", "cwt", "raw"]])
def test_an_image_model_of_the_views_exports_to_onnx_with_parity(small_demo, tmp_path, views):
    """The views are computed before the model, so an image model of any of them exports as
    the mel one does: real preprocessed windows of the views, ONNX within the parity bound."""
    from hmsbrain.inference.export import PARITY_RTOL, export_model, parity_inputs
    from hmsbrain.models.registry import build_model
    from tests.conftest import tiny_config

    cfg = tiny_config(small_demo, tmp_path)
    cfg.preprocess.views, cfg.preprocess.n_mels = views, 16
    cfg.preprocess.win_length, cfg.model.use_wavenet = 32, False
    inputs = parity_inputs(cfg, n_rows=4)
    widths = {"zoom": 16, "stft": 16, "stft_signals": 16, "cwt": 16, "raw": 500}
    assert inputs[IMAGE_INPUT].shape == (4, 64, sum(widths[v] for v in views) + 16, 3)
    model = build_model(cfg.model, inputs[IMAGE_INPUT].shape[1:], None, 6)
    report = export_model(model, tmp_path / "model.onnx", inputs)
    assert report["parity"]["logits_rel_err"] <= PARITY_RTOL


def test_a_view_the_graph_cannot_compute_is_refused_by_name() -> None:
    from hmsbrain.config import load_config
    from hmsbrain.core.inputs import model_inputs

    cfg = hms_config(["preprocess.spectrogram=graph", "model.use_wavenet=false"])
    assert model_inputs(cfg.model, cfg.preprocess) == ("montage", "kaggle")
    cfg.preprocess.views = ["mel", "cwt"]
    with pytest.raises(ConfigError, match=r"preprocess\.views=\['mel', 'cwt'\].*spectrogram=cpu"):
        model_inputs(cfg.model, cfg.preprocess)
    with pytest.raises(ConfigError, match=r"preprocess\.views\[1\]: 'superlet' is not one of"):
        load_config(overrides=["preprocess.views=[mel, superlet]"])


@pytest.mark.parametrize("top_db", [20.0, 80.0])
def test_db_floor_and_tiles_match_librosa_where_power_spans_past_the_floor(top_db) -> None:
    # Power over 12 decades (120 dB), so a large share of it sits below either floor: the floor
    # depth, its reference (the window's peak over all signals) and the tile scale all show.
    rng = np.random.default_rng(3)
    power = (10.0 ** rng.uniform(-12, 0, (2, 4, 3, 5))).astype(np.float32)
    cfg = dataclasses.replace(PreprocessConfig(), top_db=top_db)
    expected = np.stack(
        [librosa.power_to_db(p, ref=p.max(), amin=1e-10, top_db=top_db) for p in power]
    )
    assert (expected == -top_db).mean() > 0.2  # the floor is reached in every case
    np.testing.assert_allclose(power_to_db(power, top_db), expected, atol=1e-3)
    groups = ((0, 1), (2, 3))
    half = top_db / 2
    tiles = power_tiles(power.copy(), groups, cfg)
    for g, group in enumerate(groups):
        mean_db = expected[:, list(group)].mean(axis=1)
        np.testing.assert_allclose(tiles[:, g], (mean_db + half) / half, atol=1e-4)
