"""The spectrogram image computed inside the model graph, from the clean montage.

:func:`mel_image` builds, from a symbolic ``(batch, channels, samples)`` montage, exactly the
image that :func:`hmsbrain.dsp.mel.group_tiles` and :func:`hmsbrain.dsp.image.build_image`
compute on the CPU. On a GPU the input pipeline then only slices raw samples, so the CPU does
no spectral work, and a random time shift is a shifted slice of the montage rather than a new
spectrogram computed per sample.

Only Keras core layers with fixed weights and ``keras.ops`` are used (no custom layers, no
Lambda), so the model saves as ``.keras``, reloads without custom objects and exports to ONNX
like any other. Every step is the CPU path's arithmetic rewritten for the graph:

* framing and the windowed DFT over the bins the mel filters use: one strided convolution whose
  kernel is the DFT matrix of :func:`hmsbrain.dsp.mel._mel_operators`;
* power and mel bands: the squared real and imaginary parts through one fixed 1x1 convolution
  (the mel matrix stacked twice, so ``re^2 @ mel + im^2 @ mel`` is a single product), its bands
  in descending order so that the image's high-frequency-on-top flip costs nothing;
* dB relative to each window's peak over all its channels, floored at ``-top_db``;
* group means and the ``(tile + half) / half`` scaling: one fixed 1x1 convolution over the
  channel axis (weights ``1 / (|group| * half)``, bias 1);
* groups stacked top to bottom and the grey image repeated to three channels.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from hmsbrain.config import PreprocessConfig
from hmsbrain.dsp.mel import _mel_operators, hop_length

POWER_FLOOR = 1e-10  # librosa.power_to_db's amin, as dsp.mel.group_tiles uses
# The layer whose output is the mel power before dB, ``(batch, channels, frames, bands)`` with
# the bands high to low; named so that tests and tools can read it.
MEL_LAYER = "spectrogram_mel"


def mel_image(
    montage: keras.KerasTensor,
    cfg: PreprocessConfig,
    groups: tuple[tuple[int, ...], ...],
    sample_rate: float,
) -> keras.KerasTensor:
    """Clean montage ``(batch, channels, samples)`` -> image ``(batch, groups * n_mels,
    n_frames, 3)``, equal to ``build_image(group_tiles(montage, groups, cfg))``.

    ``sample_rate`` is the montage's rate (the CPU path reads ``cfg.sample_rate``, which the
    pipeline resamples every recording to). The layers are float32 whatever the global dtype
    policy: EEG power reaches ~1e10, beyond float16, and the 1e-10 dB floor is below float16's
    smallest value, so under mixed precision the image would overflow or turn to -inf. Its
    layers have fixed ``spectrogram_*`` names: one such image per model.
    """
    n_channels, n_samples = montage.shape[1:]
    hop = hop_length(n_samples, cfg)
    if hop < 1:
        raise ValueError(f"{n_samples} samples cannot make {cfg.n_frames} frames")
    win_length = min(cfg.win_length, n_samples)  # as dsp.mel.mel_power: a short epoch
    dft, mel = _mel_operators(sample_rate, cfg.n_fft, win_length, cfg.n_mels, cfg.fmin, cfg.fmax)
    n_bins = mel.shape[0]

    # Frame t covers samples [t * hop - lead, t * hop - lead + win_length) of the zero-padded
    # signal (librosa's centred frames, see dsp.mel.mel_power). Padding or cropping the signal to
    # exactly the span of the n_frames frames makes the valid convolution give those frames only.
    lead = cfg.n_fft // 2 - (cfg.n_fft - win_length) // 2
    right = (cfg.n_frames - 1) * hop + win_length - lead - n_samples
    x = layers.Reshape((n_channels, n_samples, 1), dtype="float32", name="spectrogram_in")(montage)
    if right < 0:
        x = layers.Cropping2D(((0, 0), (0, -right)), dtype="float32", name="spectrogram_crop")(x)
    x = layers.ZeroPadding2D(
        ((0, 0), (lead, max(right, 0))), dtype="float32", name="spectrogram_pad"
    )(x)
    stft = layers.Conv2D(
        2 * n_bins,
        (1, win_length),
        strides=(1, hop),
        use_bias=False,
        trainable=False,
        dtype="float32",
        name="spectrogram_dft",
    )
    spectrum = stft(x)  # (batch, channels, frames, 2 * bins): real parts, then imaginary parts
    stft.set_weights([dft[None, :, None, :]])

    to_mel = layers.Conv2D(
        cfg.n_mels, 1, use_bias=False, trainable=False, dtype="float32", name=MEL_LAYER
    )
    power = to_mel(ops.square(spectrum))  # (batch, channels, frames, bands), high bands first
    to_mel.set_weights([np.concatenate([mel, mel])[None, None, :, ::-1]])

    # As dsp.mel.group_tiles: dB below the window's peak over every channel, frame and band.
    db = ops.log(ops.maximum(power, POWER_FLOOR)) * np.float32(10.0 / np.log(10.0))
    db = ops.maximum(db - ops.max(db, axis=(1, 2, 3), keepdims=True), -cfg.top_db)

    # Group means and scaling as one product over the channel axis, moved last for it.
    half = cfg.top_db / 2.0
    weights = np.zeros((n_channels, len(groups)), np.float32)
    for g, members in enumerate(groups):
        weights[list(members), g] = 1.0 / (len(members) * half)
    db = layers.Permute((2, 3, 1), dtype="float32", name="spectrogram_channels_last")(db)
    group_mean = layers.Conv2D(
        len(groups), 1, trainable=False, dtype="float32", name="spectrogram_groups"
    )
    tiles = group_mean(db)  # (batch, frames, bands, groups)
    group_mean.set_weights([weights[None, None], np.ones(len(groups), np.float32)])

    # Groups top to bottom, each tile's bands already high first: rows = groups * bands.
    image = layers.Permute((3, 2, 1), dtype="float32", name="spectrogram_rows")(tiles)
    image = layers.Reshape(
        (len(groups) * cfg.n_mels, cfg.n_frames, 1), dtype="float32", name="spectrogram_image"
    )(image)
    return ops.repeat(image, 3, axis=-1)  # ImageNet stems expect RGB
