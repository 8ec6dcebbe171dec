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
    import pandas as pd

    one, two = (pd.read_csv(io.StringIO(curves[k])) for k in ("one", "two"))
    assert "mirrored: 1 replicas" in done.stdout and "mirrored: 2 replicas" in done.stdout
    # The training loss: the same weights see the same global batches, whatever the split.
    pd.testing.assert_series_equal(one["train_loss"], two["train_loss"], rtol=1e-5)
    # Validation (inference on each replica's share, in float32) agrees to float tolerance.
    pd.testing.assert_series_equal(one["val_kl"], two["val_kl"], rtol=1e-3)


# JAX splits the CPU into devices from XLA_FLAGS, read when it starts: a fresh process.
JAX_SCRIPT = """
import json, sys
from hmsbrain.training.loop import train_fold
from tests.conftest import tiny_config
from pathlib import Path
curves = {}
for name, devices in (("one", ["cpu:0"]), ("two", ["cpu:0", "cpu:1"])):
    cfg = tiny_config(Path(sys.argv[1]), Path(sys.argv[2]) / name, backbone="wavenet")
    cfg.train.strategy, cfg.train.devices = "data_parallel", devices
    # 7 validation rows per batch: each is padded to the devices' multiple and trimmed.
    cfg.train.batch_size, cfg.train.val_batch_size = 8, 7
    cfg.model.dropout, cfg.train.workers = 0.0, 1
    train_fold(cfg, fold=0)
    history = Path(sys.argv[2]) / name / "outputs" / "wavenet" / "fold0" / "history.csv"
    curves[name] = history.read_text()
print("CURVES " + json.dumps(curves))
"""


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("jax") is None,
    reason="needs JAX (requirements.txt: jax[cpu]) for keras.distribution.DataParallel",
)
def test_jax_data_parallel_two_devices_follow_the_one_device_loss_curve(
    small_demo, tmp_path
) -> None:
    env = {
        **os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", "KERAS_BACKEND": "jax",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
    }  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, str(small_demo), str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("CURVES "))
    curves = json.loads(line[len("CURVES ") :])
    import pandas as pd

    one, two = (pd.read_csv(io.StringIO(curves[k])) for k in ("one", "two"))
    assert "data_parallel: 1 devices" in done.stdout and "data_parallel: 2 devices" in done.stdout
    # Batch norm sees the global batch in both (one sharded array), so the curves agree.
    pd.testing.assert_series_equal(one["train_loss"], two["train_loss"], rtol=1e-5)
    pd.testing.assert_series_equal(one["val_kl"], two["val_kl"], rtol=1e-4)
