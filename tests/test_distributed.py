"""Several devices: a 2-replica run, on the CPU split into two logical devices, follows the
same loss curve as one replica with the same global batch, with TensorFlow's MirroredStrategy
and with Keras' DataParallel on the JAX backend (where JAX is installed)."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
# Devices are declared before the backend starts (TensorFlow's logical devices, JAX's
# XLA_FLAGS), so each script runs in a fresh process; ``setup`` is its backend's part.
SCRIPT = """
import json, sys
{setup}
from hmsbrain.training.loop import train_fold
from tests.conftest import tiny_config
from pathlib import Path
curves = {{}}
for name, devices in (("one", {one}), ("two", {two})):
    cfg = tiny_config(Path(sys.argv[1]), Path(sys.argv[2]) / name, backbone="wavenet")
    cfg.train.strategy, cfg.train.devices = "{strategy}", devices
    # 7 validation rows per batch: data_parallel pads each to the devices' multiple, trims.
    cfg.train.batch_size, cfg.train.val_batch_size = 8, 7
    cfg.model.dropout, cfg.train.workers = 0.0, 1
    train_fold(cfg, fold=0)
    history = Path(sys.argv[2]) / name / "outputs" / "wavenet" / "fold0" / "history.csv"
    curves[name] = history.read_text()
print("CURVES " + json.dumps(curves))
"""
TF_SETUP = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""


def one_and_two_devices(
    small_demo: Path, tmp_path: Path, script: str, env: dict[str, str]
) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """The script's output and the training histories of its 1- and 2-device runs."""
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", **env}
    done = subprocess.run(
        [sys.executable, "-c", script, str(small_demo), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("CURVES "))
    curves = json.loads(line[len("CURVES ") :])
    one, two = (pd.read_csv(io.StringIO(curves[k])) for k in ("one", "two"))
    return done.stdout, one, two


@pytest.mark.slow
def test_two_replicas_follow_the_one_replica_loss_curve(small_demo, tmp_path) -> None:
    script = SCRIPT.format(
        setup=TF_SETUP, one=["/cpu:0"], two=["/cpu:0", "/cpu:1"], strategy="mirrored"
    )
    out, one, two = one_and_two_devices(small_demo, tmp_path, script, {})
    assert "mirrored: 1 replicas" in out and "mirrored: 2 replicas" in out
    # The training loss: the same weights see the same global batches, whatever the split.
    pd.testing.assert_series_equal(one["train_loss"], two["train_loss"], rtol=1e-5)
    # Validation (inference on each replica's share, in float32) agrees to float tolerance.
    pd.testing.assert_series_equal(one["val_kl"], two["val_kl"], rtol=1e-3)


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("jax") is None,
    reason="needs JAX (requirements.txt: jax[cpu]) for keras.distribution.DataParallel",
)
def test_jax_data_parallel_two_devices_follow_the_one_device_loss_curve(
    small_demo, tmp_path
) -> None:
    script = SCRIPT.format(
        setup="", one=["cpu:0"], two=["cpu:0", "cpu:1"], strategy="data_parallel"
    )
    env = {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    out, one, two = one_and_two_devices(small_demo, tmp_path, script, env)
    assert "data_parallel: 1 devices" in out and "data_parallel: 2 devices" in out
    # Batch norm sees the global batch in both (one sharded array), so the curves agree.
    pd.testing.assert_series_equal(one["train_loss"], two["train_loss"], rtol=1e-5)
    pd.testing.assert_series_equal(one["val_kl"], two["val_kl"], rtol=1e-4)
