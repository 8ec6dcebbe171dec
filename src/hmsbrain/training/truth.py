"""The truth file of the dataset a run trains on (:mod:`hmsbrain.core.truth`), written by
training beside the folds file and named in every fold's ``summary.json`` (key ``truth``)."""

from __future__ import annotations

from pathlib import Path

from hmsbrain.core.truth import Truth, write_truth
from hmsbrain.data.dataset import Dataset


def truth_path(cache_dir: str | Path, tag: str) -> Path:
    """``<cache_dir>/truth-<tag>.parquet``, one file per dataset as the folds file is; absolute,
    so a fold summary naming it still finds it from another folder or a copied run."""
    return Path(cache_dir).resolve() / f"truth-{tag}.parquet"


def truth_of(data: Dataset) -> Truth:
    """Every unit's target, votes and group in ``data`` (its whole labelled split)."""
    targets = data.unit_targets(data.rows)
    targets.index.name = data.id_column
    groups = data.rows.groupby(data.id_column, sort=True)["group"].first()
    return Truth(
        targets,
        data.unit_votes(data.rows).loc[targets.index],
        groups.loc[targets.index],
        data.hard,
        str(Path(data.root).resolve()),
    )


def write_truth_of(data: Dataset, path: str | Path) -> Path:
    """Write the truth of ``data`` to ``path``. Rewritten at every fold's start (it is small and
    the write atomic), so it always holds the labels the latest training read."""
    return write_truth(path, truth_of(data))
