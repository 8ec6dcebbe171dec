"""Spectrogram tiles -> the image backbones read (mirrored by :mod:`hmsbrain.core.mirror`)."""

from __future__ import annotations

import numpy as np


def build_image(tiles: np.ndarray, side_tiles: np.ndarray | None = None) -> np.ndarray:
    """Tiles ``(..., groups, n_mels, n_frames)`` -> an ImageNet-shaped image ``(..., H, W, 3)``.

    The group tiles are stacked top to bottom, high frequencies up; ``side_tiles`` (the same
    groups from another source, such as the Kaggle spectrograms), when given, sit to the right.
    The grey image is repeated over three channels because ImageNet backbones and their
    pretrained stems expect RGB.
    """
    image = stack_tiles(tiles)
    if side_tiles is not None:
        image = np.concatenate([image, stack_tiles(side_tiles)], axis=-1)
    return np.repeat(image[..., None], 3, axis=-1)


def stack_tiles(tiles: np.ndarray) -> np.ndarray:
    """``(..., G, n_mels, n_frames)`` -> the grey ``(..., G * n_mels, n_frames)``, high
    frequency on top."""
    flipped = tiles[..., ::-1, :]  # row 0 of an image is its top
    return flipped.reshape(*tiles.shape[:-3], -1, tiles.shape[-1])
