"""The left-right mirror of a batch: hemisphere-swap augmentation and test-time augmentation.

A montage that knows which channel mirrors which (10-20 names with left/right pairs) offers
two permutations: ``mirror`` over its channels and ``group_mirror`` over its channel groups
(the image's tiles). Mirroring a batch with them gives exactly the inputs of the mirrored
recording, so a swap never changes what the inputs mean.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np

from hmsbrain.config import ConfigError
from hmsbrain.core.inputs import IMAGE_INPUT, KAGGLE_INPUT, MONTAGE_INPUT, RAW_INPUT, Batch


class Mirrorable(Protocol):
    """What a mirror needs of a montage (:class:`hmsbrain.dsp.montage.Montage` has it)."""

    kind: str
    names: tuple[str, ...]
    mirror: np.ndarray | None  # channel permutation exchanging the hemispheres
    group_mirror: np.ndarray | None  # the same for the channel groups (image tiles)


def mirror_image(image: np.ndarray, group_mirror: np.ndarray, axis: int = -3) -> np.ndarray:
    """Mirror an image of stacked group tiles: its group bands are permuted as the hemispheres
    exchange (LL <-> RL and LP <-> RP for the double banana).

    ``axis`` is the image's row axis (-3 for ``(..., H, W, C)``, -2 for ``(..., H, W)``). Every
    tile of a band belongs to the same group, so one permutation of the row bands mirrors the
    whole image, exactly as if the recording had been mirrored first.
    """
    axis = axis % image.ndim
    bands = np.split(image, len(group_mirror), axis=axis)
    return np.concatenate([bands[j] for j in group_mirror], axis=axis)


def swap_batch(batch: Mapping[str, np.ndarray], montage: Mirrorable) -> Batch:
    """The hemisphere-mirrored copy of a model-input batch (image bands and raw channels)."""
    if montage.mirror is None or montage.group_mirror is None:
        raise ConfigError(
            f"the {montage.kind} montage of channels {list(montage.names)[:8]} has no left-right "
            "mirror; set train.tta=false and train.swap_prob=0"
        )
    out = Batch(batch)
    if IMAGE_INPUT in batch:
        out[IMAGE_INPUT] = mirror_image(batch[IMAGE_INPUT], montage.group_mirror, axis=-3)
    if KAGGLE_INPUT in batch:  # grey, rows = the same group bands as the image
        out[KAGGLE_INPUT] = mirror_image(batch[KAGGLE_INPUT], montage.group_mirror, axis=-2)
    if MONTAGE_INPUT in batch:
        out[MONTAGE_INPUT] = batch[MONTAGE_INPUT][..., montage.mirror, :]
    if RAW_INPUT in batch:
        out[RAW_INPUT] = batch[RAW_INPUT][..., montage.mirror]
    return out
