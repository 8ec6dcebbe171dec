"""The GPU check runs where the lent GPU machines run it: Keras on JAX, without TensorFlow.

The dry run goes through every section on the CPU at a tiny size, in a child process in which
``import tensorflow`` fails (the lent machines have none); the ONNX sections get a small ONNX
model written with the ``onnx`` package, since exporting one needs TensorFlow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hmsbrain.bench.gpu_check import REAL_EEGS, REAL_STAGE2_EEGS, fold_hours
from hmsbrain.config import load_config, recipe_path
from hmsbrain.hms.constants import VOTE_COLUMNS

REPO = Path(__file__).resolve().parents[1]
# The check's command line in a child whose TensorFlow import fails, as on the lent machines.
_NO_TF = (
    "import sys; sys.modules['tensorflow'] = None; "
    "from hmsbrain.benchmark import main; main(sys.argv[1:])"
)


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    return {**env, "PYTHONPATH": str(REPO / "src"), "JAX_PLATFORMS": "cpu"}


def _tiny_onnx(path: Path) -> None:
    """A model with the WaveNet recipe's input and a ``probs`` output: the mean over time, then
    a softmax (what ONNX Runtime times here is the session, not a network)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["raw"], ["mean"], axes=[1], keepdims=0),
            helper.make_node("Slice", ["mean", "start", "end", "axis"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
        ],
        "tiny",
        [helper.make_tensor_value_info("raw", TensorProto.FLOAT, ["batch", 2000, 16])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 6])],
        [
            helper.make_tensor("start", TensorProto.INT64, [1], [0]),
            helper.make_tensor("end", TensorProto.INT64, [1], [6]),
            helper.make_tensor("axis", TensorProto.INT64, [1], [1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # readable by every ONNX Runtime this project supports
    onnx.save(model, path)


def _check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _NO_TF, "gpu", *args],
        capture_output=True,
        text=True,
        env=_child_env(),
        cwd=REPO,
        timeout=900,
        check=False,
    )


@pytest.mark.slow
def test_the_dry_run_goes_through_every_section_without_tensorflow(tmp_path):
    onnx_path, out = tmp_path / "model.onnx", tmp_path / "gpu_check.json"
    _tiny_onnx(onnx_path)
    done = _check("--dry-run", "--out", str(out), "--onnx", str(onnx_path))
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["dry_run"] is True
    assert report["keras"].endswith(" on jax")
    recipes = {r["recipe"]: r for r in report["recipes"]}
    assert list(recipes) == ["hms/wavenet.yaml", "hms/effnetv2.yaml"]
    assert recipes["hms/wavenet.yaml"]["inputs"] == {"raw": [2000, 16]}
    assert set(recipes["hms/effnetv2.yaml"]["inputs"]) == {"image", "raw"}
    for figures in recipes.values():
        assert figures["steps"] == 2
        for key in ("steps_per_s", "model_windows_per_s", "pipeline_windows_per_s"):
            assert figures[key] > 0
        assert figures["hours_per_fold"] >= figures["model_hours_per_fold"] > 0
    assert report["onnxruntime"]["cpu_windows_per_s"] > 0
    # No CUDA and no TensorRT here: both say why, in the JSON and on screen.
    assert "no working CUDA provider" in report["onnxruntime"]["skipped"]
    assert report["tensorrt"]["skipped"]
    assert "onnxruntime CUDA: skipped: " in done.stdout
    assert "tensorrt: skipped: " in done.stdout
    assert "hours per fold at 17,001 EEGs: " in done.stdout


def test_without_a_gpu_it_says_so_in_one_line_and_exits_0(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = _check("--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("no GPU: JAX sees only cpu;")
    assert done.stdout.count("\n") == 1
    assert not out.exists()


def test_a_missing_onnx_file_is_one_line(tmp_path):
    done = _check("--dry-run", "--onnx", str(tmp_path / "absent.onnx"))
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0
    assert "absent.onnx: no such file; export one where TensorFlow is installed" in done.stderr


def test_hours_per_fold_count_both_stages_of_four_fifths_of_the_real_set():
    cfg = load_config(recipe_path("hms/effnetv2.yaml"))
    batch, (epochs1, epochs2) = 32, (cfg.train.stage1_epochs, cfg.train.stage2_epochs)
    assert (cfg.train.batch_size, cfg.train.samples_per_eeg, cfg.folds.n_folds) == (batch, 1, 5)
    steps = epochs1 * np.ceil(np.ceil(REAL_EEGS * 0.8) / batch)
    steps += epochs2 * np.ceil(np.ceil(REAL_STAGE2_EEGS * 0.8) / batch)
    # At one step per second: the steps in hours.
    assert fold_hours(cfg, batch) == pytest.approx(steps / 3600)


def test_the_real_counts_are_those_of_the_vote_table(hms_labels_path):
    rows = pd.read_parquet(hms_labels_path)
    cfg = load_config(recipe_path("hms/effnetv2.yaml"))
    votes = rows[list(VOTE_COLUMNS)].sum(axis=1)  # as HMSDataset.row_votes counts them
    assert rows["eeg_id"].nunique() == REAL_EEGS
    assert rows.loc[votes >= cfg.data.min_votes[1], "eeg_id"].nunique() == REAL_STAGE2_EEGS
