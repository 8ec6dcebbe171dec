"""Several devices: a 2-replica MirroredStrategy run, on the CPU split into two logical
devices, follows the same loss curve as one replica with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Logical devices must be declared before TensorFlow starts: a fresh process.
SCRIPT = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from hmsbrain.training.loop import train_fold
from tests.conftest import tiny_config
from pathlib import Path
curves = {}
for name, devices in (("one", ["/cpu:0"]), ("two", ["/cpu:0", "/cpu:1"])):
    cfg = tiny_config(Path(sys.argv[1]), Path(sys.argv[2]) / name, backbone="wavenet")
    cfg.train.strategy, cfg.train.devices = "mirrored", devices
    cfg.train.batch_size, cfg.model.dropout, cfg.train.workers = 8, 0.0, 1
    train_fold(cfg, fold=0)
    history = Path(sys.argv[2]) / name / "outputs" / "wavenet" / "fold0" / "history.csv"
    curves[name] = history.read_text()
print("CURVES " + json.dumps(curves))
"""


@pytest.mark.slow
def test_two_replicas_follow_the_one_replica_loss_curve(small_demo, tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(small_demo), str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("CURVES "))
    curves = json.loads(line[len("CURVES ") :])
    import io

    import pandas as pd

    one, two = (pd.read_csv(io.StringIO(curves[k])) for k in ("one", "two"))
    assert "mirrored: 1 replicas" in done.stdout and "mirrored: 2 replicas" in done.stdout
    # The training loss: the same weights see the same global batches, whatever the split.
    pd.testing.assert_series_equal(one["train_loss"], two["train_loss"], rtol=1e-5)
    # Validation (inference on each replica's share, in float32) agrees to float tolerance.
    pd.testing.assert_series_equal(one["val_kl"], two["val_kl"], rtol=1e-3)
