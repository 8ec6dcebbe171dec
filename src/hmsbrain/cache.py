"""On-disk cache of model inputs, so preprocessing runs once per dataset and recipe.

Inputs are stored as float16 ``.npy`` files opened as memory maps: a batch reads only its own
rows, so memory does not grow with the dataset. The cache folder's name is a hash of everything
the inputs depend on (data folder, its table file, preprocessing config, split), so a change of
recipe never reuses stale inputs. It is written to a temporary folder and renamed into place, so
an interrupted build is never mistaken for a complete one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hmsbrain.config import Config
from hmsbrain.constants import TEST_CSV, TRAIN_CSV
from hmsbrain.dataio import HMSData
from hmsbrain.inputs import iter_inputs


@dataclasses.dataclass
class InputCache:
    """Memory-mapped inputs of every row of one split: ``image (N, H, W)``, ``raw (N, T, 16)``."""

    root: Path
    image: np.ndarray
    raw: np.ndarray

    def __len__(self) -> int:
        return len(self.image)

    def batch(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """float32 inputs of ``rows``; the grey image is repeated to the 3 channels models take."""
        image = np.asarray(self.image[rows], dtype=np.float32)
        return {
            "image": np.repeat(image[..., None], 3, axis=-1),
            "raw": np.asarray(self.raw[rows], dtype=np.float32),
        }


def cache_key(data: HMSData, cfg: Config) -> str:
    table = data.root / (TRAIN_CSV if data.split == "train" else TEST_CSV)
    stat = table.stat()
    payload = {
        "root": str(data.root.resolve()),
        "table": [stat.st_size, stat.st_mtime_ns],
        "split": data.split,
        "preprocess": dataclasses.asdict(cfg.preprocess),
    }
    return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def open_cache(data: HMSData, cfg: Config, batch_size: int = 64) -> InputCache:
    """The cache of ``data`` under ``cfg.data.cache_dir``, built on first use."""
    root = Path(cfg.data.cache_dir) / f"inputs-{data.split}-{cache_key(data, cfg)}"
    if not (root / "meta.json").is_file():
        _build(data, cfg, root, batch_size)
    return InputCache(
        root, np.load(root / "image.npy", mmap_mode="r"), np.load(root / "raw.npy", mmap_mode="r")
    )


def _build(data: HMSData, cfg: Config, root: Path, batch_size: int) -> None:
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    image = raw = None
    progress = tqdm(total=len(data), desc=f"preprocessing {data.split} inputs", unit="window")
    for rows, batch in iter_inputs(data, cfg.preprocess, batch_size):
        if image is None:  # shapes are known after the first batch
            image = np.lib.format.open_memmap(
                tmp / "image.npy", "w+", np.float16, (len(data), *batch.image.shape[1:3])
            )
            raw = np.lib.format.open_memmap(
                tmp / "raw.npy", "w+", np.float16, (len(data), *batch.raw.shape[1:])
            )
        image[rows] = batch.image[..., 0]  # the three channels are identical
        raw[rows] = batch.raw
        progress.update(len(rows))
    progress.close()
    image.flush()
    raw.flush()
    del image, raw
    (tmp / "meta.json").write_text(json.dumps({"rows": len(data), "split": data.split}))
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
