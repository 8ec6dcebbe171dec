"""The packaged notebook in an environment built like Kaggle's image, offline (issue 19).

A fresh virtualenv holds only ``kernels/kaggle-image.txt`` (no onnxruntime, TensorFlow or
Keras), and pip can download nothing: no index (``PIP_NO_INDEX``, pip's configuration ignored,
no find-links but the dataset's wheels), and every proxy setting points at a trap that counts
the connections anything makes to it: the notebook must make none.
The notebook must install onnxruntime from the model dataset's wheels and submit; without
wheels, it must still submit the class prior and say why; and the ``.ipynb`` itself must run
under ``jupyter nbconvert --execute``, as Kaggle runs it.

The wheels come from folders that ``pip download`` fills once (the package registry is
reachable here and in CI) under ``~/.cache/hmsbrain``; where that is not possible, the tests
are skipped with the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import jupytext
import numpy as np
import pandas as pd
import pytest

from hmsbrain.atomic import atomic_dir
from hmsbrain.cli import package_main
from hmsbrain.hms import kaggle
from hmsbrain.hms.constants import VOTE_COLUMNS
from hmsbrain.hms.kaggle import COMPETITION, DATASET_SLUG, KERNEL_NOTEBOOK, KERNELS_DIR, MANIFEST
from hmsbrain.hms.submission import validate_submission
from hmsbrain.hms.wheels import WHEELS_DIR, installed_onnxruntime, sha256

IMAGE = KERNELS_DIR / "kaggle-image.txt"
CACHE = Path.home() / ".cache" / "hmsbrain"
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"

pytestmark = pytest.mark.slow


def _filled(folder: Path, what: list[str]) -> Path:
    """``folder``, filled with ``pip download what`` the first time (for this Python)."""
    if not folder.is_dir():
        with atomic_dir(folder) as tmp:
            command = [sys.executable, "-m", "pip", "download", "--only-binary=:all:"]
            done = subprocess.run(
                [*command, "--dest", str(tmp), *what], capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                last = (done.stderr or done.stdout).strip().splitlines()[-1:]
                pytest.skip(f"cannot fill the wheel cache {folder} (no network?): {last}")
    return folder


class Trap(socketserver.ThreadingTCPServer):
    """A proxy on a free local port that answers nothing: it counts each connection made to
    it and closes it."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), socketserver.BaseRequestHandler)
        self.connections = 0

    def verify_request(self, request, client_address) -> bool:
        self.connections += 1
        return False  # refused: closed unanswered


@pytest.fixture
def trap() -> Iterator[Trap]:
    """The proxy every download would go through."""
    with Trap() as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield server
        server.shutdown()


def _offline_env(trap: Trap | None = None, **extra: str) -> dict[str, str]:
    """This environment with pip shut off the network: no index, no configuration file, no
    find-links, every proxy the ``trap``; no PYTHONPATH to this checkout."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PIP_") and k.lower() not in ("no_proxy", "pythonpath")
    }
    env.update(PIP_NO_INDEX="1", PIP_CONFIG_FILE=os.devnull, PYTHONNOUSERSITE="1")
    if trap is not None:
        proxy = "http://{}:{}".format(*trap.server_address)
        env.update({k: proxy for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")})
    return {**env, **extra}


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)


@pytest.fixture(scope="module")
def kaggle_image(tmp_path_factory) -> Path:
    """The python of a fresh virtualenv holding kernels/kaggle-image.txt, installed offline
    from the cached wheels."""
    digest = hashlib.sha256(IMAGE.read_bytes()).hexdigest()[:12]
    wheels = _filled(CACHE / "kaggle-image-wheels" / f"cp{PYTHON}-{digest}", ["-r", str(IMAGE)])
    venv = tmp_path_factory.mktemp("kaggle-image") / "venv"
    created = _run([sys.executable, "-m", "venv", str(venv)])
    assert created.returncode == 0, created.stderr
    python = venv / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "--find-links", str(wheels), "-r", str(IMAGE)]
    done = _run(install, env=_offline_env())
    assert done.returncode == 0, done.stderr[-3000:]
    return python


@pytest.fixture
def kaggle_python(kaggle_image: Path) -> Path:
    """The image's python as Kaggle starts it: without onnxruntime (a test before may have
    installed it), TensorFlow or Keras."""
    uninstall = [str(kaggle_image), "-m", "pip", "uninstall", "-y", "onnxruntime"]
    done = _run(uninstall, env=_offline_env())
    assert done.returncode == 0, done.stderr
    code = "import importlib.util as u; print([m for m in {!r} if u.find_spec(m)])"
    found = _run([str(kaggle_image), "-c", code.format(("onnxruntime", "tensorflow", "keras"))])
    assert found.stdout.strip() == "[]", found.stdout + found.stderr
    return kaggle_image


@pytest.fixture(scope="module")
def wheeled(packaged: Path, tmp_path_factory) -> Path:
    """The package of the `packaged` ensemble with the CPU build's wheels for this Python,
    taken offline (--wheels-from) from a folder ``pip download`` filled once."""
    version = installed_onnxruntime()
    assert version is not None  # the exports were checked with it
    cache = CACHE / "kernel-wheels" / f"onnxruntime-{version}-cp{PYTHON}"
    wheels = _filled(cache, [f"onnxruntime=={version}"])
    out = tmp_path_factory.mktemp("wheeled") / "dist"
    target = ["--wheels-from", str(wheels), "--wheel-builds", "cpu", "--python-version", PYTHON]
    package_main(
        [str(packaged / "sample.json"), "--out-dir", str(out), "--kaggle-user", "tester", *target]
    )
    return out


def _kaggle_input(tmp_path: Path, hms_sample_dir: Path, dataset: Path) -> tuple[Path, Path]:
    """``/kaggle/input`` (the competition files and the model dataset) and the working dir."""
    inputs, work = tmp_path / "input", tmp_path / "working"
    inputs.mkdir()
    work.mkdir()
    (inputs / COMPETITION).symlink_to(hms_sample_dir)
    (inputs / DATASET_SLUG).symlink_to(dataset)
    return inputs, work


def _check_submission(work: Path, hms_sample_dir: Path) -> pd.DataFrame:
    sub = pd.read_csv(work / "submission.csv")
    validate_submission(sub, hms_sample_dir / "test.csv", hms_sample_dir / "sample_submission.csv")
    return sub


def test_the_notebook_installs_onnxruntime_from_the_dataset_and_submits(
    kaggle_python, wheeled, packaged, hms_sample_dir, tmp_path, trap
) -> None:
    dataset = wheeled / DATASET_SLUG
    manifest = json.loads((dataset / MANIFEST).read_text())
    bundled = manifest["wheels"]
    assert bundled["builds"] == {"cpu": f"onnxruntime=={installed_onnxruntime()}"}
    assert bundled["pythons"] == [PYTHON]
    assert any(name.startswith("onnxruntime-") for name in bundled["files"])
    for name, digest in bundled["files"].items():
        assert sha256(dataset / WHEELS_DIR / name) == digest
    assert sorted(p.name for p in (dataset / WHEELS_DIR).iterdir()) == sorted(bundled["files"])

    inputs, work = _kaggle_input(tmp_path, hms_sample_dir, dataset)
    # The packaged notebook as the script jupytext makes of it (what Kaggle runs, cell by cell).
    script = tmp_path / "hms_inference.py"
    jupytext.write(jupytext.read(wheeled / "kernel" / KERNEL_NOTEBOOK), script, fmt="py:percent")
    done = _run(
        [str(kaggle_python), str(script)],
        cwd=work,
        env=_offline_env(trap, HMS_INPUT_DIR=str(inputs)),
        timeout=900,
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert trap.connections == 0, "the notebook tried to reach the network"
    assert f"installed {bundled['builds']['cpu']} from {inputs / DATASET_SLUG / WHEELS_DIR}" in log
    assert "(CPU build; " in log
    assert "runtime auto: using onnx" in log
    sub = _check_submission(work, hms_sample_dir)
    expected = pd.read_csv(packaged / "sample.csv")
    np.testing.assert_allclose(sub[list(VOTE_COLUMNS)], expected[list(VOTE_COLUMNS)], atol=1e-5)
    listed = _run([str(kaggle_python), "-m", "pip", "list", "--format=freeze"], env=_offline_env())
    installed = dict(line.split("==") for line in listed.stdout.split())
    assert installed["onnxruntime"] == installed_onnxruntime()  # from the wheels
    # The image's own numpy is kept (the bundled one is newer, and not needed).
    assert f"numpy=={installed['numpy']}" in IMAGE.read_text().split()


def test_without_wheels_the_notebook_submits_the_class_prior_and_says_why(
    kaggle_python, packaged, hms_sample_dir, tmp_path, trap
) -> None:
    """The environment the issue reproduced its crash in: no onnxruntime, no Keras. On Kaggle
    (KAGGLE_KERNEL_RUN_TYPE set; anywhere else it is a dry run, which this fails) the notebook
    submits, and its summary says in capitals that all of it is the class prior."""
    dataset = packaged / "dist" / DATASET_SLUG  # packaged with --no-wheels
    inputs, work = _kaggle_input(tmp_path, hms_sample_dir, dataset)
    env = _offline_env(trap, HMS_INPUT_DIR=str(inputs), **{kaggle.KAGGLE_RUN_VARIABLE: "Batch"})
    done = _run(
        [str(kaggle_python), str(KERNELS_DIR / "hms_inference.py")],
        cwd=work,
        env=env,
        timeout=900,
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert trap.connections == 0
    assert "dry run (not on Kaggle): False" in log
    assert "bundles no wheels (packaged with --no-wheels)" in log
    assert "onnx: onnxruntime is not installed; keras: keras is not installed" in log
    assert "NO RUNTIME for any run: every test EEG gets the ensemble's class prior" in log
    assert "; 100% OF THE SUBMISSION IS THE CLASS PRIOR (1 OF 1 TEST EEGS), ABOVE " in log
    sub = _check_submission(work, hms_sample_dir)
    prior = json.loads((dataset / MANIFEST).read_text())["class_prior"]
    np.testing.assert_allclose(sub[list(VOTE_COLUMNS)], [prior], atol=1e-12)


def test_the_ipynb_runs_under_nbconvert_as_kaggle_runs_it(
    kaggle_python, wheeled, packaged, hms_sample_dir, tmp_path, trap
) -> None:
    inputs, work = _kaggle_input(tmp_path, hms_sample_dir, wheeled / DATASET_SLUG)
    # Kaggle runs the notebook in its working folder, which is where nbconvert starts the kernel.
    notebook = Path(shutil.copy(wheeled / "kernel" / KERNEL_NOTEBOOK, work))
    executed = tmp_path / "executed.ipynb"
    nbconvert = [str(kaggle_python.parent / "jupyter"), "nbconvert", "--to", "notebook"]
    done = _run(
        [*nbconvert, "--execute", str(notebook), "--output", str(executed)],
        cwd=work,
        # No kernel from the user's own Jupyter folder: only the image's python3 kernel.
        env=_offline_env(
            trap, HMS_INPUT_DIR=str(inputs), JUPYTER_DATA_DIR=str(tmp_path / "jupyter")
        ),
        timeout=900,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert trap.connections == 0
    outputs = executed.read_text()
    assert "installed onnxruntime==" in outputs and "runtime auto: using onnx" in outputs
    assert f"hmsbrain from {inputs / DATASET_SLUG / 'hmsbrain'}" in outputs
    sub = _check_submission(work, hms_sample_dir)
    expected = pd.read_csv(packaged / "sample.csv")
    np.testing.assert_allclose(sub[list(VOTE_COLUMNS)], expected[list(VOTE_COLUMNS)], atol=1e-5)
