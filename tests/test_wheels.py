"""The notebook's first cell: onnxruntime installed from the model dataset's wheels, offline,
the GPU build where a GPU is visible; every failure a logged line, never an exception.

pip itself is replaced here by a recorder (the real install runs in tests/test_kaggle_image.py,
in a virtualenv built like Kaggle's image)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hmsbrain.hms import wheels
from hmsbrain.hms.wheels import MANIFEST, WHEELS_DIR, ensure_onnxruntime, gpu_visible, sha256

CPU_WHEEL = "onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl"
GPU_WHEEL = "onnxruntime_gpu-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl"


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A model dataset whose manifest lists two bundled (stand-in) wheels."""
    folder = tmp_path / "hmsbrain-models" / WHEELS_DIR
    folder.mkdir(parents=True)
    for name in (CPU_WHEEL, GPU_WHEEL):
        (folder / name).write_bytes(name.encode())
    entry = {
        "builds": {"cpu": "onnxruntime==1.31.1", "gpu": "onnxruntime-gpu==1.31.1"},
        "pythons": ["3.11", "3.12"],
        "platforms": ["manylinux_2_28_x86_64"],
        "files": {p.name: sha256(p) for p in sorted(folder.iterdir())},
    }
    (folder.parent / MANIFEST).write_text(json.dumps({"runs": [], "wheels": entry}))
    return folder.parent


class FakePip:
    """Records every pip command and its environment; ``fail`` lists requirements whose
    install fails. A successful install makes ``import onnxruntime`` work again."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail: tuple[str, ...] = ()) -> None:
        self.calls: list[tuple[list[str], dict[str, str]]] = []
        self.fail = fail
        self.monkeypatch = monkeypatch
        monkeypatch.setitem(sys.modules, "onnxruntime", None)  # not importable until installed
        monkeypatch.setattr(wheels.subprocess, "run", self)

    def __call__(self, command, **kwargs) -> subprocess.CompletedProcess:
        self.calls.append((list(command), dict(kwargs["env"])))
        if command[-1] in self.fail:
            return subprocess.CompletedProcess(command, 1, "", "ERROR: Could not install it")
        self.monkeypatch.delitem(sys.modules, "onnxruntime")  # the real one imports again
        return subprocess.CompletedProcess(command, 0, "Successfully installed", "")


def test_the_gpu_build_is_installed_offline_from_the_bundled_wheels_only(
    model_dir, monkeypatch, caplog
) -> None:
    monkeypatch.setenv("PIP_FIND_LINKS", "https://example.org/wheels")  # must not be used
    monkeypatch.setenv("PIP_INDEX_URL", "https://example.org/simple")
    monkeypatch.setattr(wheels, "gpu_visible", lambda: "nvidia-smi lists GPU 0: Tesla T4")
    pip = FakePip(monkeypatch)
    with caplog.at_level("INFO"):
        assert ensure_onnxruntime(model_dir) == "gpu"
    [(command, env)] = pip.calls
    assert command[:4] == [sys.executable, "-m", "pip", "install"]
    assert command[-1] == "onnxruntime-gpu==1.31.1"
    assert "--no-index" in command
    assert [command[i + 1] for i, a in enumerate(command) if a == "--find-links"] == [
        str(model_dir / WHEELS_DIR)
    ]
    # No index, find-links or proxy from pip's configuration: its files and PIP_* are ignored.
    assert env["PIP_CONFIG_FILE"] == os.devnull
    assert [k for k in env if k.startswith("PIP_")] == ["PIP_CONFIG_FILE"]
    assert "installed onnxruntime-gpu==1.31.1" in caplog.text
    assert "GPU build; nvidia-smi lists GPU 0: Tesla T4" in caplog.text


def test_without_a_gpu_the_cpu_build_is_installed(model_dir, monkeypatch, caplog) -> None:
    monkeypatch.setattr(wheels, "gpu_visible", lambda: None)
    pip = FakePip(monkeypatch)
    with caplog.at_level("INFO"):
        assert ensure_onnxruntime(model_dir) == "cpu"
    assert [command[-1] for command, _ in pip.calls] == ["onnxruntime==1.31.1"]
    assert "(CPU build; no GPU visible)" in caplog.text


def test_a_failed_install_is_logged_and_falls_through(model_dir, monkeypatch, caplog) -> None:
    monkeypatch.setattr(wheels, "gpu_visible", lambda: "/dev/nvidia0 exists")
    pip = FakePip(monkeypatch, fail=("onnxruntime-gpu==1.31.1",))
    with caplog.at_level("INFO"):
        assert ensure_onnxruntime(model_dir) == "cpu"  # the GPU build failed: the CPU one
    assert "could not install onnxruntime-gpu==1.31.1" in caplog.text
    assert "ERROR: Could not install it" in caplog.text
    caplog.clear()
    pip = FakePip(monkeypatch, fail=("onnxruntime-gpu==1.31.1", "onnxruntime==1.31.1"))
    with caplog.at_level("INFO"):
        assert ensure_onnxruntime(model_dir) is None  # no exception either
    assert len(pip.calls) == 2
    assert "ONNXRUNTIME NOT INSTALLED" in caplog.text
    assert "bundled for CPython 3.11/3.12" in caplog.text


def test_a_damaged_wheel_is_not_installed(model_dir, monkeypatch, caplog) -> None:
    (model_dir / WHEELS_DIR / CPU_WHEEL).write_bytes(b"truncated upload")
    monkeypatch.setattr(wheels, "gpu_visible", lambda: None)
    pip = FakePip(monkeypatch)
    assert ensure_onnxruntime(model_dir) is None
    assert pip.calls == []
    assert "WHEELS NOT INSTALLED" in caplog.text and CPU_WHEEL in caplog.text


def test_without_bundled_wheels_it_says_what_follows(model_dir, monkeypatch, caplog) -> None:
    (model_dir / MANIFEST).write_text(json.dumps({"runs": [], "wheels": None}))
    pip = FakePip(monkeypatch)
    assert ensure_onnxruntime(model_dir) is None
    assert pip.calls == []
    assert "bundles no wheels (packaged with --no-wheels)" in caplog.text


def test_an_installed_onnxruntime_needs_no_wheels(model_dir, monkeypatch, caplog) -> None:
    calls: list[object] = []
    monkeypatch.setattr(wheels.subprocess, "run", lambda *a, **k: calls.append(a))
    with caplog.at_level("INFO"):
        assert ensure_onnxruntime(model_dir) is None  # onnxruntime imports in this process
    assert calls == []
    assert "the bundled wheels are not needed" in caplog.text


def test_a_gpu_shows_itself_through_nvidia_smi(tmp_path, monkeypatch) -> None:
    if Path("/dev/nvidia0").exists():
        pytest.skip("this machine has a GPU device file")
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: Tesla T4 (UUID: GPU-1234)'\n")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpu_visible() == "nvidia-smi lists GPU 0: Tesla T4 (UUID: GPU-1234)"
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    assert gpu_visible() is None
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert gpu_visible() is None
