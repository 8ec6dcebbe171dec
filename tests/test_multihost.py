"""Several processes, one run (train.strategy=data_parallel over JAX's distributed runtime), on
127.0.0.1 only: two CPU processes train as one process does on the same global batches, only
process 0 writes, and a cluster that cannot form or loses a process ends every process with
one line, within its timeout."""

from __future__ import annotations

import importlib.util
import io
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from hmsbrain.training.cluster import (
    ADDRESSES,
    PROCESS_ID,
    PROCESSES,
    TIMEOUT,
    ClusterError,
    cluster_from_env,
)
from tests.conftest import tiny_overrides

REPO = Path(__file__).resolve().parents[1]
needs_jax = pytest.mark.skipif(
    importlib.util.find_spec("jax") is None, reason="needs JAX (requirements.txt: jax[cpu])"
)
# train.py's entry with every finished output file printed: each lands by an atomic rename
# (hmsbrain/atomic.py), so this names which process wrote what.
LAUNCHER = """
import os, sys
_replace = os.replace
def _logged(src, dst, *args, **kwargs):
    _replace(src, dst, *args, **kwargs)
    print(f"WROTE {os.environ.get('KERAS_DISTRIBUTION_PROCESS_ID', '-')} {dst}", flush=True)
os.replace = _logged
from hmsbrain.cli import train_main
train_main()
"""
LIMIT = 150  # seconds any launch may take before its processes are killed
STEPS = 4
# One short epoch: global batches of 8 (4 per process), no baselines, no TTA.
FAST = [
    "train.batch_size=8",
    "train.stage1_epochs=1",
    "train.stage2_epochs=0",
    "train.samples_per_eeg=1",
    f"train.min_steps_per_epoch={STEPS}",
    "train.baseline=[]",
    "train.tta=false",
    "train.workers=1",
]


def free_port() -> int:
    """A port nothing listens on (the OS picks it; a race with another test is unlikely)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(
    tmp_path: Path, args: list[str], envs: list[dict[str, str]], limit: float = LIMIT
) -> list[subprocess.CompletedProcess]:
    """Start one train.py process per ``envs`` entry at once, each in its own process group,
    and wait for all; past ``limit`` seconds every group is killed and the test fails."""
    script = tmp_path / "launch_train.py"
    script.write_text(LAUNCHER)
    base = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
    base.pop("XLA_FLAGS", None)  # one CPU device per process
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), *args],
            env={**base, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # the group holds the supervisor and its training child
        )
        for env in envs
    ]
    deadline = time.monotonic() + limit
    try:
        done = []
        for proc in procs:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
        return done
    except subprocess.TimeoutExpired:
        pytest.fail(f"the processes did not finish within {limit} s (a hang)")
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()


def cluster_envs(processes: int, port: int, timeout: int = 60, **extra: str) -> list[dict]:
    return [
        {
            ADDRESSES: f"127.0.0.1:{port}",
            PROCESSES: str(processes),
            PROCESS_ID: str(i),
            TIMEOUT: str(timeout),
            **extra,
        }
        for i in range(processes)
    ]


def weights(model_file: Path) -> dict[str, np.ndarray]:
    """Every weight of a saved ``.keras`` model by its path in the file."""
    found: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(model_file) as archive:
        h5 = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
        h5.visititems(
            lambda name, item: (
                found.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None
            )
        )
    return found


def errors(done: subprocess.CompletedProcess) -> list[str]:
    return [x for x in done.stderr.splitlines() if x.startswith("error: ")]


def wrote(runs: list[subprocess.CompletedProcess]) -> list[tuple[str, str]]:
    """(process id, path) of every file the runs wrote, from the launcher's lines."""
    lines = [x.split() for run in runs for x in run.stdout.splitlines()]
    return [(w[1], w[2]) for w in lines if w[:1] == ["WROTE"]]


@pytest.mark.slow
@needs_jax
def test_two_processes_train_as_one_and_process_0_alone_writes(
    small_demo: Path, tmp_path: Path
) -> None:
    def args(folder: str) -> list[str]:
        # The same cache for both runs (the first builds it); one epoch of STEPS steps; no
        # dropout and no random augmentation, whose draws are each process's own (so equal in
        # law, not bit for bit).
        return [
            "--strategy",
            "data_parallel",
            *tiny_overrides(small_demo, tmp_path / folder, "wavenet"),
            *FAST,
            f"data.cache_dir={tmp_path / 'cache'}",
            "model.dropout=0.0",
            "train.swap_prob=0.0",
            "train.mixup_alpha=0.0",
            "train.time_masks=0",
            "train.freq_masks=0",
        ]

    [one] = launch(tmp_path, args("one"), [{}])
    assert one.returncode == 0, one.stderr[-3000:]
    two = launch(tmp_path, args("two"), cluster_envs(2, free_port()))
    for done in two:
        assert done.returncode == 0, done.stderr[-3000:]
    assert "2 process(es)" in two[0].stdout and "2 process(es)" in two[1].stdout

    fold = Path("outputs") / "wavenet" / "fold0"
    history = [pd.read_csv(tmp_path / run / fold / "history.csv") for run in ("one", "two")]
    # Within the drift those biases (below) bring to the batch norm's outputs.
    for column in ("train_loss", "val_kl"):
        pd.testing.assert_series_equal(history[0][column], history[1][column], rtol=1e-3)
    expected = weights(tmp_path / "one" / fold / "model.keras")
    got = weights(tmp_path / "two" / fold / "model.keras")
    assert expected.keys() == got.keys()
    diff = {k: float(np.abs(expected[k] - got[k]).max()) for k in expected}
    # Kernels and scales (each layer's first variable) agree to float rounding. The biases of
    # convolutions that feed a batch norm have a gradient of zero up to rounding, and Adam
    # scales that rounding noise to steps of the learning rate: they only stay within it.
    kernels = max(d for k, d in diff.items() if k.endswith("vars/0"))
    print(f"1 vs 2 processes: kernels within {kernels:.1e}, every weight {max(diff.values()):.1e}")
    assert kernels < 1e-5
    assert max(diff.values()) < 2e-3 * STEPS  # train.lr
    # The validation, shared out over both processes and gathered, is the one process's.
    oof_one = pd.read_parquet(tmp_path / "one" / fold / "oof.parquet")
    oof_two = pd.read_parquet(tmp_path / "two" / fold / "oof.parquet")
    pd.testing.assert_frame_equal(oof_one, oof_two, rtol=1e-3)
    # Process 0 wrote the OOF once; process 1 wrote nothing at all.
    oof_path = str(tmp_path / "two" / fold / "oof.parquet")
    assert [w for w in wrote(two) if w[1].endswith("oof.parquet")] == [("0", oof_path)]
    assert {w[0] for w in wrote(two)} == {"0"}

    # --resume: every process loads process 0's checkpoint and state (the run is complete, so
    # only the outputs are made again, by process 0).
    again = launch(tmp_path, [*args("two"), "--resume"], cluster_envs(2, free_port()))
    for done in again:
        assert done.returncode == 0, done.stderr[-3000:]
        assert "Resuming" in done.stdout
    assert [w for w in wrote(again) if w[1].endswith("oof.parquet")] == [("0", oof_path)]
    assert {w[0] for w in wrote(again)} == {"0"}


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({PROCESSES: "2", PROCESS_ID: "2", ADDRESSES: "10.0.0.1:1234"}, "0 to 1"),
        ({PROCESSES: "2", PROCESS_ID: "0", ADDRESSES: "a:1,b:2,c:3"}, "names 3 addresses"),
        ({PROCESSES: "2", PROCESS_ID: "0", ADDRESSES: "10.0.0.1"}, "is not host:port"),
        ({PROCESSES: "two", PROCESS_ID: "0", ADDRESSES: "10.0.0.1:1"}, "whole number"),
        ({PROCESSES: "2", PROCESS_ID: "1", ADDRESSES: "h:1", TIMEOUT: "0"}, "seconds >= 1"),
    ],
)
def test_a_malformed_cluster_is_named(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ClusterError, match=problem):
        cluster_from_env(env)


def test_one_process_is_no_cluster() -> None:
    assert cluster_from_env({}) is None
    assert cluster_from_env({PROCESSES: "1"}) is None
    cluster = cluster_from_env({PROCESSES: "2", PROCESS_ID: "1", ADDRESSES: "h:7,g:8"})
    assert cluster is not None and (cluster.host, cluster.port) == ("h", 7)


@needs_jax
def test_an_unreachable_coordinator_is_one_line(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    [done] = launch(tmp_path, ["--strategy", "data_parallel"], cluster_envs(2, port, 3)[1:])
    assert done.returncode == 2
    assert errors(done) == [
        f"error: process 1 of 2 (coordinator 127.0.0.1:{port}): cannot reach the coordinator "
        "within 3 s (Connection refused); is process 0 started, and is the address process 0's?"
    ]


@needs_jax
def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        [done] = launch(tmp_path, ["--strategy", "data_parallel"], cluster_envs(2, port, 3)[:1])
    assert done.returncode == 2
    [line] = errors(done)
    assert line.startswith(f"error: process 0 of 2 (coordinator 127.0.0.1:{port}): port {port}")
    assert "in use" in line


@pytest.mark.slow
@needs_jax
def test_process_counts_that_differ_end_every_process_in_one_line(
    small_demo: Path, tmp_path: Path
) -> None:
    """Process 1 believes in 3 processes, the coordinator in 2: process 1 finds out once it has
    joined and leaves; process 0 then loses it at its next collective. Neither hangs."""
    port = free_port()
    envs = cluster_envs(2, port, 20)
    envs[1][PROCESSES] = "3"
    args = ["--strategy", "data_parallel", *tiny_overrides(small_demo, tmp_path, "wavenet"), *FAST]
    started = time.monotonic()
    done = launch(tmp_path, args, envs, limit=90)
    assert time.monotonic() - started < 90
    assert done[0].returncode != 0 and done[1].returncode == 2
    [zero], [one] = errors(done[0]), errors(done[1])
    assert one.startswith(f"error: process 1 of 3 (coordinator 127.0.0.1:{port}): ")
    assert "started with KERAS_DISTRIBUTION_NUM_PROCESSES=3" in one
    assert zero.startswith(f"error: process 0 of 2 (coordinator 127.0.0.1:{port}): ")
    assert "another process of the cluster stopped" in zero, done[0].stderr[-3000:]


@needs_jax
def test_a_cluster_that_never_forms_ends_in_one_line_within_its_timeout(tmp_path: Path) -> None:
    """Process 0 waits for 3 processes, process 1 was told 2: JAX aborts both from C++ after
    the timeout; their supervisors say so in one line each."""
    port = free_port()
    envs = cluster_envs(2, port, 5)
    envs[0][PROCESSES] = "3"
    done = launch(tmp_path, ["--strategy", "data_parallel"], envs, limit=60)
    for i, d in enumerate(done):
        assert d.returncode != 0
        [line] = errors(d)
        count = 3 if i == 0 else 2
        assert line.startswith(f"error: process {i} of {count} (coordinator 127.0.0.1:{port}): ")
        assert "did not form" in line, d.stderr[-2000:]
