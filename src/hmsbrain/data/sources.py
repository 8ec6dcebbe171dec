"""Which data a run reads: a folder of any registered source, or an embedded demo.

``data.data_dir`` is a folder path or ``demo:<name>``; empty means the default demo (the one a
source declares, :func:`hmsbrain.data.registry.default_demo`). ``data.layout`` names the source
that reads it (``auto``: the first source, in priority order, that recognises the folder; for a
demo, the source that owns it). Every source, the generic layouts and the HMS competition's
alike, is an entry of :mod:`hmsbrain.data.registry`; nothing here knows any of them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hmsbrain.config import Config
from hmsbrain.data.base import data_path
from hmsbrain.data.dataset import Dataset
from hmsbrain.data.registry import AUTO, demo_folder, demo_name, demo_source, get_source, source_for

__all__ = ["demo_name", "is_hms_data", "is_hms_layout", "open_dataset", "resolve_data_dir"]

log = logging.getLogger(__name__)

# The HMS source's name, for the two questions the command line still asks by it (which
# recipe, whether a submission must match the Kaggle files); its code lives in hmsbrain.hms.
HMS = "hms"


def resolve_data_dir(cfg: Config) -> Path:
    """The data folder of ``cfg``; a demo is generated on first use."""
    name = demo_name(cfg.data.data_dir)
    if name is None:
        return data_path(cfg.data.data_dir)
    maker = demo_source(name).demos[name]
    root = maker(demo_folder(name, cfg.data.demo_dir), cfg.data.demo_seed)
    log.info("using the embedded demo dataset %r at %s", name, root)
    return root


def is_hms_layout(root: Path, layout: str = AUTO) -> bool:
    """Whether ``root`` is read by the HMS source under ``data.layout=layout``."""
    return layout == HMS if layout != AUTO else get_source(HMS).detect(root)


def is_hms_data(data_dir: str, layout: str = AUTO) -> bool:
    """Whether ``data.data_dir`` names HMS data, without generating or reading anything (the
    command line picks its default recipe by this)."""
    name = demo_name(data_dir)
    if name is not None:
        return name in get_source(HMS).demos
    return is_hms_layout(Path(data_dir), layout)


def open_dataset(
    cfg: Config, split: str = "train", window_seconds: float = 0.0, fallback: bool = False
) -> Dataset:
    """Split ``split`` of the configured data, opened by its source.

    ``window_seconds`` is the length of the epochs the model was trained on, for sources that
    cut new recordings into windows to predict; ``fallback``: a recording a source cannot prepare
    ahead (e.g. store) is left to prediction's fallback path instead of being an error.
    """
    source = source_for(cfg.data.data_dir, cfg.data.layout)  # before a demo is generated
    return source.open(cfg, resolve_data_dir(cfg), split, window_seconds, fallback)
