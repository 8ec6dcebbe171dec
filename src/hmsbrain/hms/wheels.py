"""ONNX Runtime for an offline Kaggle notebook: wheels bundled in the model dataset, installed
before anything imports ``onnxruntime``.

Kaggle's image has ONNX but no ONNX Runtime, and a competition notebook runs without internet.
``package.py`` therefore downloads the wheels of both builds (``pip download``, for Kaggle's
Python and platform, :func:`download_wheels`) into ``<dataset>/wheels/`` and records their names
and SHA-256s in the package's manifest. The notebook's first cell calls
:func:`ensure_onnxruntime`, which installs the GPU build where a GPU is visible and the CPU build
elsewhere, from those files only (``pip install --no-index``, pip's configuration ignored). A
failure there is a logged line, never an exception: the notebook then runs on the next runtime,
or on the class prior.

This module imports only the standard library: it runs before the notebook imports anything
else.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
import logging
import os
import shutil
import site
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MANIFEST = "ensemble.json"  # the package's manifest, beside the runs
WHEELS_DIR = "wheels"
# The distribution of each build; both provide the module ``onnxruntime``. onnxruntime-gpu on
# PyPI is the CUDA 12 build (CUDA 11 builds live on another index), which Kaggle's T4s need.
BUILDS = {"cpu": "onnxruntime", "gpu": "onnxruntime-gpu"}
# Kaggle's image runs CPython 3.12 since December 2025 (Kaggle/docker-python#1516) and 3.11
# before; a notebook can stay pinned to an older image, so both are bundled by default.
KAGGLE_PYTHONS = ("3.11", "3.12")
# Its Ubuntu has glibc 2.35: a wheel for any manylinux up to that runs there. pip does not
# widen a --platform tag to older glibc versions by itself, so every one is listed.
KAGGLE_GLIBC_MINOR = 35
KAGGLE_PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(KAGGLE_GLIBC_MINOR, 16, -1)),
    "manylinux2014_x86_64",
)


class WheelError(RuntimeError):
    """Wheels that could not be bundled; the message says which, and what to do."""


def _last_line(done: subprocess.CompletedProcess) -> str:
    lines = (done.stderr or done.stdout or "").strip().splitlines()
    return lines[-1] if lines else f"exit status {done.returncode}"


def sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def installed_onnxruntime() -> str | None:
    """The version of the onnxruntime installed here (either build), if any."""
    for distribution in BUILDS.values():
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


@dataclass(frozen=True)
class WheelTarget:
    """What ``package.py`` bundles: the builds of ONNX Runtime ``version``, for these Pythons
    and platforms, downloaded from the package index or taken from the folder ``wheels_from``."""

    version: str
    builds: tuple[str, ...] = tuple(BUILDS)
    pythons: tuple[str, ...] = KAGGLE_PYTHONS
    platforms: tuple[str, ...] = KAGGLE_PLATFORMS
    wheels_from: Path | None = None


def download_wheels(dest: Path, target: WheelTarget) -> dict:
    """The wheels of ``target`` with their dependencies, in ``dest``. Returns the manifest's
    ``wheels`` entry: what each build installs, the target, and every file's SHA-256."""
    if target.wheels_from is not None and not target.wheels_from.is_dir():
        raise WheelError(f"{target.wheels_from}: no such folder (--wheels-from)")
    dest.mkdir(parents=True, exist_ok=True)
    platforms = [f"--platform={p}" for p in target.platforms]
    where, offline = "the package index", []
    if target.wheels_from is not None:
        # pip resolves from the folder alone, exactly as it would from the index.
        where = str(target.wheels_from)
        offline = ["--no-index", "--find-links", where]
    for build in target.builds:
        requirement = f"{BUILDS[build]}=={target.version}"
        for python in target.pythons:
            command = [sys.executable, "-m", "pip", "download", "--only-binary=:all:"]
            command += ["--implementation", "cp", "--python-version", python, *platforms]
            command += ["--dest", str(dest), *offline, requirement]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise WheelError(
                    f"pip download {requirement} for CPython {python} from {where} failed: "
                    f"{_last_line(done)}; offline, pass --wheels-from a folder holding them, "
                    "or --no-wheels"
                )
    return {
        "builds": {build: f"{BUILDS[build]}=={target.version}" for build in target.builds},
        "pythons": list(target.pythons),
        "platforms": list(target.platforms),
        "files": {path.name: sha256(path) for path in sorted(dest.glob("*.whl"))},
    }


def gpu_visible() -> str | None:
    """How a CUDA GPU shows itself here (its device file, or ``nvidia-smi -L``); None without
    one."""
    if Path("/dev/nvidia0").exists():
        return "/dev/nvidia0 exists"
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        done = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = done.stdout.strip().partition("\n")[0]
    return f"nvidia-smi lists {first}" if done.returncode == 0 and first else None


def _offline_pip_install(folder: Path, requirement: str) -> subprocess.CompletedProcess:
    """``pip install requirement`` from the wheels in ``folder`` and nowhere else: no index,
    and no find-links, index or proxy settings from pip's configuration files or ``PIP_*``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    command = [
        *(sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(folder)),
        *("--only-binary=:all:", "--disable-pip-version-check", "--no-input", requirement),
    ]
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)


def _import_onnxruntime() -> str | None:
    """None when ``onnxruntime`` imports, else why not, in one line."""
    try:
        importlib.import_module("onnxruntime")
    except (ImportError, OSError) as exc:  # OSError: a shared library that does not load
        return f"{type(exc).__name__}: {str(exc).partition(chr(10))[0]}"
    return None


def ensure_onnxruntime(model_dir: str | Path) -> str | None:
    """Make ``import onnxruntime`` work, from the model dataset's wheels when it does not yet:
    the GPU build where a GPU is visible (the CPU build if that fails), else the CPU build.

    Returns the build it installed, or None when it installed none: onnxruntime was there
    already, the dataset bundles no wheels, or every install failed. Each case is logged in one
    line; nothing raises, so the notebook goes on to the next runtime."""
    model_dir = Path(model_dir)
    missing = _import_onnxruntime()
    if missing is None:
        version = installed_onnxruntime() or "?"
        log.info("onnxruntime %s is installed; the bundled wheels are not needed", version)
        return None
    manifest_path, folder = model_dir / MANIFEST, model_dir / WHEELS_DIR
    try:
        entry = json.loads(manifest_path.read_text()).get("wheels")
    except (OSError, ValueError) as exc:
        log.error("WHEELS NOT INSTALLED: %s cannot be read (%s)", manifest_path, exc)
        return None
    if not entry:
        log.warning(
            "onnxruntime cannot be imported (%s) and %s bundles no wheels (packaged with "
            "--no-wheels): the notebook runs on keras if it can, else on the class prior",
            missing,
            model_dir,
        )
        return None
    damaged = [
        name
        for name, digest in entry["files"].items()
        if not (folder / name).is_file() or sha256(folder / name) != digest
    ]
    if damaged:
        log.error(
            "WHEELS NOT INSTALLED: %s: %s missing or not the packaged file (SHA-256)",
            folder,
            ", ".join(damaged),
        )
        return None
    gpu = gpu_visible()
    wanted = ("gpu", "cpu") if gpu else ("cpu",)
    for build in (b for b in wanted if b in entry["builds"]):
        requirement = entry["builds"][build]
        done = _offline_pip_install(folder, requirement)
        importlib.invalidate_caches()
        # pip installs into the user site when site-packages is read-only; a user site that
        # did not exist when Python started is not on sys.path yet (a virtualenv has none).
        if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
            site.addsitedir(site.getusersitepackages())
        why = _last_line(done) if done.returncode != 0 else _import_onnxruntime()
        if why is None:
            log.info(
                "installed %s from %s (%s build; %s)",
                requirement,
                folder,
                build.upper(),
                gpu or "no GPU visible",
            )
            return build
        log.warning("could not install %s from %s: %s", requirement, folder, why)
    log.error(
        "ONNXRUNTIME NOT INSTALLED from %s (bundled for CPython %s; this is %d.%d): the "
        "notebook runs on keras if it can, else on the class prior",
        folder,
        "/".join(entry["pythons"]),
        *sys.version_info[:2],
    )
    return None
