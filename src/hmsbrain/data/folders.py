"""The class-folders layout: ``root/<class name>/<one epoch per file>``.

Each file is one epoch with a hard label, its folder's name. Files may be of any type
:mod:`hmsbrain.data.files` reads, but all must have the same channels, sampling rate and length,
since the model sees fixed-size inputs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from hmsbrain.data.base import DataError, Epochs
from hmsbrain.data.files import is_signal_file, match_channels, read_signal_file
from hmsbrain.data.spec import DatasetSpec, one_hot, resolve_classes, subject_id

log = logging.getLogger(__name__)


def class_folders(root: Path) -> list[Path]:
    """The visible sub-folders of ``root``, sorted by name."""
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def read_folders(root: Path, spec: DatasetSpec) -> Epochs:
    """Every signal file under ``root/<class>/`` as one labelled epoch."""
    folders = class_folders(root)
    names = [f.name for f in folders]
    classes = resolve_classes(names, spec)
    unknown = [n for n in names if n not in classes]
    if unknown:
        raise DataError(
            f"{root / unknown[0]}: unknown class folder {unknown[0]!r}; "
            f"classes in {spec.source}: {list(classes)}"
        )
    absent = [c for c in classes if c not in names]
    if absent:
        log.info("%s: no folder for classes %s (no epochs of them)", root, absent)

    signals: list[np.ndarray] = []
    labels: list[str] = []
    files: list[str] = []
    first: tuple[Path, float, tuple[str, ...], int] | None = None
    for folder in folders:
        paths = sorted(p for p in folder.iterdir() if is_signal_file(p))
        skipped = sorted(
            p.name for p in folder.iterdir() if p not in paths and not p.name.startswith(".")
        )
        if skipped:
            log.warning("%s: skipping %s (not signal files)", folder, skipped)
        if not paths:
            log.warning("%s: no signal files, so no epochs of class %r", folder, folder.name)
        for path in paths:
            data, sfreq, channels = read_signal_file(path, spec)
            if first is None:
                first = (path, sfreq, channels, data.shape[1])
            else:
                data = _check_like_first(path, data, sfreq, channels, first)
            signals.append(data)
            labels.append(folder.name)
            files.append(path.relative_to(root).as_posix())
    if first is None:
        raise DataError(f"{root}: no signal files in any class folder")

    groups = None
    if spec.group_pattern is not None:
        groups = np.array([subject_id(f, spec, str(root / f)) for f in files])
    return Epochs(
        signals=np.stack(signals),
        sfreq=first[1],
        channels=first[2],
        files=np.array(files),
        ids=np.array(files),
        classes=classes,
        targets=one_hot(labels, classes),
        hard=True,
        groups=groups,
    )


def _check_like_first(
    path: Path,
    data: np.ndarray,
    sfreq: float,
    channels: tuple[str, ...],
    first: tuple[Path, float, tuple[str, ...], int],
) -> np.ndarray:
    first_path, first_sfreq, first_channels, first_samples = first
    if sfreq != first_sfreq:
        raise DataError(
            f"{path}: sampling rate {sfreq:g} Hz differs from {first_sfreq:g} Hz "
            f"of {first_path}; every epoch must have the same rate"
        )
    data = match_channels(data, channels, first_channels, path)
    if data.shape[1] != first_samples:
        raise DataError(
            f"{path}: {data.shape[1]} samples, but {first_path} has {first_samples}; "
            "every epoch must have the same length"
        )
    return data
