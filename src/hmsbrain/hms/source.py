"""The Kaggle HMS layout as a data source of the library, registered like any other.

The data layer (:mod:`hmsbrain.data.registry`) imports this module by name on first lookup; it
never imports :mod:`hmsbrain.hms` itself. This source owns the ``hms`` demo, the default one (an
empty ``data.data_dir``), and trains with the HMS recipe.
"""

from __future__ import annotations

from pathlib import Path

from hmsbrain.config import Config
from hmsbrain.core.inputs import cached_inputs
from hmsbrain.data.base import DataError
from hmsbrain.data.dataset import Dataset
from hmsbrain.data.registry import Source, register_source
from hmsbrain.hms import demo
from hmsbrain.hms.constants import TEST_CSV, TRAIN_CSV
from hmsbrain.hms.dataset import HMSDataset
from hmsbrain.hms.inputs import uses_spectrogram
from hmsbrain.hms.layout import SPLITS, HMSData
from hmsbrain.hms.store import open_store


class HMSSource(Source):
    def detect(self, root: Path) -> bool:
        """``train.csv`` + ``train_eegs/`` or ``test.csv`` + ``test_eegs/``."""
        return any(
            (root / f"{split}.csv").is_file() and (root / f"{split}_eegs").is_dir()
            for split in SPLITS
        )

    def open(
        self, cfg: Config, root: Path, split: str, window_seconds: float, fallback: bool
    ) -> Dataset:
        """Split ``split``: windows read from the parquet files, or (``data.storage:
        recordings``) cut from the recording store at batch time."""
        if not self.detect(root):
            raise DataError(
                f"{root}: not in the hms layout that data.layout names: no {self.signs}"
            )
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


register_source(
    HMSSource(
        name="hms",
        priority=10,  # first: its signs are the most specific of all
        signs=f"{TRAIN_CSV} + train_eegs/ or {TEST_CSV} + test_eegs/",
        recipe="hms",
        demos={"hms": demo.ensure_demo},
        default_demo="hms",
    )
)
