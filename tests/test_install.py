"""The installable package: a wheel built from the checkout holds every module, the recipes
(``configs/`` shipped as ``hmsbrain/configs``) and the ``hmsbrain`` command, and the installed
copy runs with no checkout beside it. ``python src/train.py`` keeps working from the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from hmsbrain.__main__ import COMMANDS, main

REPO = Path(__file__).resolve().parents[1]


def _setuptools() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_the_wheel_lists_every_sub_package_and_recipe_folder() -> None:
    """pyproject.toml lists its packages (it maps configs/ into the package, which find cannot
    combine), so a new sub-package must be added there: this fails until it is."""
    src = REPO / "src"
    code = {
        ".".join(p.parent.relative_to(src).parts) for p in (src / "hmsbrain").rglob("__init__.py")
    }
    recipes = {
        ".".join(("hmsbrain", *p.relative_to(REPO).parts))
        for p in [REPO / "configs", *(d for d in (REPO / "configs").rglob("*") if d.is_dir())]
    }
    assert set(_setuptools()["packages"]) == code | recipes


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_the_wheel_installs_the_package_its_recipes_and_the_command(tmp_path) -> None:
    # A copy of what the wheel is built from: pip builds in the source tree (build/,
    # *.egg-info), which must not be the checkout's.
    tree = tmp_path / "tree"
    ignore = shutil.ignore_patterns("__pycache__")
    for name in ("src", "configs"):
        shutil.copytree(REPO / name, tree / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tree / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), "."], tree)
    (wheel,) = tmp_path.glob("hmsbrain-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in (
        "hmsbrain/estimator.py",
        "hmsbrain/__main__.py",
        "hmsbrain/data/demos/__init__.py",
        "hmsbrain/configs/eeg_cpu.yaml",
        "hmsbrain/configs/hms/demo_cpu.yaml",
        "hmsbrain/configs/members/eegnet.yaml",
    ):
        assert path in names, path
    (entry_points,) = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "hmsbrain = hmsbrain.__main__:main" in zipfile.ZipFile(wheel).read(entry_points).decode()

    site = tmp_path / "site"
    _run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)], tmp_path)
    env = {**os.environ, "PYTHONPATH": str(site)}
    command = str(site / "bin" / "hmsbrain")
    # train --help lists the config keys and loads the default recipes: from the wheel's copy.
    assert "portfolio.members" in _run([command, "train", "--help"], tmp_path, env)
    where = _run(
        [
            sys.executable,
            "-c",
            "import hmsbrain.config as c; print(c.CONFIGS_DIR); print(sorted(c.member_recipes()))",
        ],
        tmp_path,
        env,
    )
    assert where.splitlines() == [
        str(site / "hmsbrain" / "configs"),
        str(sorted(p.stem for p in (REPO / "configs" / "members").glob("*.yaml"))),
    ]


def test_the_command_names_every_command(capsys) -> None:
    wanted = "train predict ensemble export package diagnose benchmark"
    assert list(COMMANDS) == wanted.split()
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


def test_the_scripts_of_the_checkout_keep_working() -> None:
    """``python src/train.py``, the competition's convention and the README's first command."""
    out = _run([sys.executable, "src/train.py", "--help"], REPO)
    assert out.startswith("usage: train.py") and "portfolio.members" in out
