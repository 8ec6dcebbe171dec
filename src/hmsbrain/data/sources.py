"""Which data a run reads: a folder in any supported layout, or an embedded demo.

``data.data_dir`` is a folder path or ``demo:<name>``; empty means ``demo:hms``. A folder in the
Kaggle HMS layout (``train.csv`` with ``train_eegs/``, or ``test.csv`` with ``test_eegs/``) is
read by :mod:`hmsbrain.hms`; every other folder by the generic layout readers
(:mod:`hmsbrain.data.layouts`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from hmsbrain.config import Config
from hmsbrain.data.base import DataError, data_path
from hmsbrain.data.dataset import Dataset, EpochDataset

log = logging.getLogger(__name__)

DEMO_PREFIX = "demo:"
HMS_DEMO = "hms"
RECORDING_SUFFIXES = (".edf", ".bdf")


def demo_name(data_dir: str) -> str | None:
    """The demo a ``data.data_dir`` value names (``""`` is the HMS demo), or None."""
    if not data_dir:
        return HMS_DEMO
    return data_dir[len(DEMO_PREFIX) :] if data_dir.startswith(DEMO_PREFIX) else None


def resolve_data_dir(cfg: Config) -> Path:
    """The data folder of ``cfg``; a demo is generated on first use."""
    name = demo_name(cfg.data.data_dir)
    if name is None:
        return data_path(cfg.data.data_dir)
    if name == HMS_DEMO:
        from hmsbrain.hms import demo

        root = demo.ensure_demo(cfg.data.demo_dir, cfg.data.demo_seed)
    else:
        from hmsbrain.data.demos import ensure_demo

        root = ensure_demo(name, Path(f"{cfg.data.demo_dir}-{name}"), cfg.data.demo_seed)
    log.info("using the embedded demo dataset %r at %s", name, root)
    return root


def is_hms_layout(root: Path, layout: str = "auto") -> bool:
    """A Kaggle HMS folder: ``train.csv`` + ``train_eegs/`` or ``test.csv`` + ``test_eegs/``."""
    if layout != "auto":
        return layout == "hms"
    return any(
        (root / f"{split}.csv").is_file() and (root / f"{split}_eegs").is_dir()
        for split in ("train", "test")
    )


def is_hms_data(data_dir: str, layout: str = "auto") -> bool:
    """Whether ``data.data_dir`` names HMS data, without generating or reading anything (the
    command line picks its default recipe by this)."""
    name = demo_name(data_dir)
    if name is not None:
        return name == HMS_DEMO
    return is_hms_layout(Path(data_dir), layout)


def unlabelled_recordings(root: Path) -> bool:
    """A folder of recordings with no events file: new data to predict in sliding windows."""
    has_recordings = any(p.suffix.lower() in RECORDING_SUFFIXES for p in root.iterdir())
    return has_recordings and not (root / "events.csv").is_file()


def open_dataset(
    cfg: Config, split: str = "train", window_seconds: float = 0.0, fallback: bool = False
) -> Dataset:
    """Split ``split`` of the configured data.

    The generic layouts have no test split of their own: ``test`` is the labelled epochs of a
    held-out folder in the same layout, or, for a folder of recordings without events, sliding
    windows of ``preprocess.window_seconds`` (default ``window_seconds``: the length of the
    epochs the model was trained on) every ``preprocess.stride_seconds`` (default half that).
    """
    root = resolve_data_dir(cfg)
    if is_hms_layout(root, cfg.data.layout):
        from hmsbrain.hms.dataset import HMSDataset
        from hmsbrain.hms.inputs import uses_spectrogram
        from hmsbrain.hms.layout import HMSData
        from hmsbrain.hms.store import open_store
        from hmsbrain.models.inputs import cached_inputs

        store = None
        if cfg.data.storage == "recordings":
            spectrograms = uses_spectrogram(cfg.preprocess, cached_inputs(cfg))
            store = open_store(
                HMSData(root, split),
                cfg.data.cache_dir,
                cfg.data.store_dtype,
                spectrograms,
                fallback,
            )
        return HMSDataset(root, split, cfg.preprocess, store)
    from hmsbrain.data.layouts import read_epochs, read_windows

    if split == "test" and unlabelled_recordings(root):
        window = cfg.preprocess.window_seconds or window_seconds
        if window <= 0:
            raise DataError(
                f"{root}: no window length for sliding-window prediction; set "
                "preprocess.window_seconds"
            )
        stride = cfg.preprocess.stride_seconds or window / 2
        epochs = read_windows(root, window, stride)
    else:
        epochs = read_epochs(root)
    extra = [p for p in root.iterdir() if p.is_file()]  # dataset.yaml, events.csv, X.npy...
    return EpochDataset(epochs, root, split, cfg.preprocess, extra)
