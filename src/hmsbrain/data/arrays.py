"""The arrays layout: ``X.npy`` (epochs, channels, samples), ``y.npy`` and optional ``groups.npy``.

``y.npy`` is either one label per epoch (integers or strings: hard labels) or one row of
``len(classes)`` non-negative numbers per epoch (probabilities or vote counts: soft labels,
normalised to sum to 1). Integer labels index ``classes`` in ``dataset.yaml`` when it lists
them; otherwise the classes are the distinct labels, sorted, as text. The arrays carry no
sampling rate, so ``dataset.yaml`` must give ``sample_rate``.

``X.npy`` without ``y.npy`` is new epochs to predict (as a folder of recordings without events
is): unlabelled, so it can be predicted but not trained on. The scikit-learn estimator
(:mod:`hmsbrain.estimator`) predicts arrays in memory this way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hmsbrain.data.base import DataError, Epochs
from hmsbrain.data.files import check_finite
from hmsbrain.data.spec import DatasetSpec, one_hot, soft_targets

X_FILE, Y_FILE, GROUPS_FILE = "X.npy", "y.npy", "groups.npy"


def read_arrays(root: Path, spec: DatasetSpec) -> Epochs:
    """``X.npy`` and its labels (and subjects, from ``groups.npy`` when present)."""
    x_path, y_path, groups_path = root / X_FILE, root / Y_FILE, root / GROUPS_FILE
    if spec.sample_rate is None:
        raise DataError(f"{x_path}: no sampling rate: set sample_rate in dataset.yaml")
    X = _load(x_path)
    if X.ndim != 3 or not np.issubdtype(X.dtype, np.number) or X.size == 0:
        raise DataError(
            f"{x_path}: expected numbers shaped (epochs, channels, samples), "
            f"got {X.dtype} shaped {X.shape}"
        )
    signals = (X * spec.scale).astype(np.float32)
    check_finite(x_path, signals)
    channels = spec.channels or tuple(f"ch{i + 1}" for i in range(X.shape[1]))
    if len(channels) != X.shape[1]:
        raise DataError(
            f"{x_path}: {X.shape[1]} channels, expected {len(channels)} {list(channels)} "
            f"from {spec.source}"
        )

    classes, targets, hard, votes = (), None, True, None
    if y_path.is_file():
        y = _load(y_path)
        _check_length(x_path, len(X), y_path, len(y))
        classes, targets, hard, votes = _targets(y_path, y, spec)
    groups = None
    if groups_path.is_file():
        groups = _load(groups_path)
        _check_length(x_path, len(X), groups_path, len(groups))
        if groups.ndim != 1:
            raise DataError(f"{groups_path}: expected one subject id per epoch, got {groups.shape}")
        groups = groups.astype(str)
    return Epochs(
        signals=signals,
        sfreq=spec.sample_rate,
        channels=tuple(channels),
        files=np.full(len(X), X_FILE),
        ids=np.array([f"epoch-{i}" for i in range(len(X))]),
        classes=classes,
        targets=targets,
        hard=hard,
        votes=votes,
        groups=groups,
    )


def _load(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npy file ({exc})") from exc


def _check_length(x_path: Path, n: int, other: Path, m: int) -> None:
    if n != m:
        raise DataError(f"{other}: {m} entries, but {x_path} has {n} epochs")


def _targets(
    path: Path, y: np.ndarray, spec: DatasetSpec
) -> tuple[tuple[str, ...], np.ndarray, bool, np.ndarray | None]:
    """``(classes, targets, hard, votes)`` from ``y.npy``."""
    if y.ndim == 2:
        if not np.issubdtype(y.dtype, np.number):
            raise DataError(f"{path}: soft labels must be numbers, got {y.dtype}")
        classes = spec.classes or tuple(str(i) for i in range(y.shape[1]))
        if len(classes) != y.shape[1]:
            raise DataError(
                f"{path}: {y.shape[1]} label columns, but {spec.source} lists "
                f"{len(classes)} classes {list(classes)}"
            )
        targets, votes = soft_targets(y, [f"{path}: row {i}" for i in range(len(y))])
        return classes, targets, False, votes
    if y.ndim != 1:
        raise DataError(f"{path}: expected shape (n,) or (n, classes), got {y.shape}")
    if np.issubdtype(y.dtype, np.floating):
        # Integer labels saved through a float array (a common pandas/numpy accident).
        if not np.all(y == np.round(y)):
            raise DataError(f"{path}: hard labels must be integers or text, got fractions")
        y = y.astype(np.int64)
    if np.issubdtype(y.dtype, np.integer):
        if spec.classes is not None:
            bad = (y < 0) | (y >= len(spec.classes))
            if bad.any():
                raise DataError(
                    f"{path}: label {y[bad][0]} at row {int(np.flatnonzero(bad)[0])} is outside "
                    f"0..{len(spec.classes) - 1}, the classes in {spec.source}"
                )
            labels = [spec.classes[i] for i in y]
            return spec.classes, one_hot(labels, spec.classes), True, None
        # Sorted as numbers (2 before 10), then named as text.
        classes = tuple(str(v) for v in np.unique(y))
        return classes, one_hot([str(v) for v in y], classes), True, None
    if y.dtype.kind != "U":
        raise DataError(f"{path}: labels must be integers or text, got {y.dtype}")
    labels = [str(v) for v in y]
    classes = spec.classes or tuple(sorted(set(labels)))
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise DataError(f"{path}: labels {unknown} are not among the classes {list(classes)}")
    return classes, one_hot(labels, classes), True, None
