"""What every data source yields, so nothing downstream asks which source it came from.

Two kinds of source exist. The HMS Kaggle layout (:mod:`hmsbrain.hms.layout`) reads labelled
50 s windows of 20-channel EEG on demand. Every other layout (class folders, recordings with
events, arrays, an epochs table; :mod:`hmsbrain.data.layouts`) is read once into
:class:`Epochs`: every epoch's signals in microvolts, at one sampling rate, with its labels,
file and subject. Both are wrapped as a :class:`Dataset`, the one interface that training,
prediction, export and ensembling use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """Input data that cannot be used as it is; the message names the file and the problem."""


@dataclass
class Epochs:
    """Epochs of one dataset, as every generic layout reader returns them.

    ``signals`` are microvolts (files in volts are converted on reading) at ``sfreq``, every
    epoch the same length. ``targets`` are one probability row per epoch, one column per class
    in ``classes`` order: one-hot for hard labels, distributions for soft ones (``votes`` then
    counts the raters behind each row, where the source gives votes). ``groups`` are subject ids
    where the source gives them; folds keep each subject in one fold, and otherwise each file.
    """

    signals: np.ndarray  # (n, channels, samples) float32, microvolts
    sfreq: float
    channels: tuple[str, ...]
    files: np.ndarray  # (n,) str: the file each epoch was read from
    ids: np.ndarray  # (n,) str: unique epoch ids, the key of prediction files
    classes: tuple[str, ...] = ()
    targets: np.ndarray | None = None  # (n, len(classes)) float; None when unlabelled
    hard: bool = True
    votes: np.ndarray | None = None  # (n,) raters per epoch, for soft labels given as votes
    groups: np.ndarray | None = None  # (n,) str subject ids, where known
    starts: np.ndarray | None = None  # (n,) seconds from the start of the file

    def __len__(self) -> int:
        return len(self.signals)

    @property
    def labelled(self) -> bool:
        return self.targets is not None


def data_path(root: str | Path) -> Path:
    """``root`` as a Path, checked to be an existing folder."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found")
    return root
