"""A run opens its data once: ``--fold all`` trains every fold (and writes the report) from one
experiment, reading each recording a single time."""

from __future__ import annotations

import collections
import json

import mne

from hmsbrain.cli import train_main
from hmsbrain.data.demos import ensure_demo


def test_fold_all_reads_each_recording_once(tmp_path, monkeypatch):
    root = ensure_demo("emotiv", tmp_path / "emotiv", 5)
    reads: collections.Counter[str] = collections.Counter()
    real_read = mne.io.read_raw_edf

    def counting_read(path, *args, **kwargs):
        reads[str(path)] += 1
        return real_read(path, *args, **kwargs)

    monkeypatch.setattr(mne.io, "read_raw_edf", counting_read)
    train_main(
        [
            "--data-dir",
            str(root),
            "--fold",
            "all",
            "--backbone",
            "shallow",
            "folds.n_folds=3",
            "train.stage1_epochs=1",
            f"data.cache_dir={tmp_path / 'cache'}",
            f"train.output_dir={tmp_path / 'outputs'}",
        ]
    )
    recordings = sorted(str(p) for p in root.glob("*.edf"))
    assert recordings and sorted(reads) == recordings
    assert set(reads.values()) == {1}, reads
    report = json.loads((tmp_path / "outputs" / "shallow" / "report.json").read_text())
    assert len(report["folds"]) == 3
