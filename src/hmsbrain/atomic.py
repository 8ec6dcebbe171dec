"""Atomic writes: every output file and folder of the project appears complete or not at all.

A crash, a full disk or a second process writing the same output never leaves a truncated
file under the real name, which a later step (``--resume``, ``ensemble.py``, ``package.py``,
the Kaggle notebook) would read as if it were whole. Files are written under a unique temporary
name in the same folder (so the final rename stays on one file system, where it is atomic) and
renamed into place only after the writer returned.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path to write ``path``'s content to; it replaces ``path`` when the block ends
    without an exception and is removed otherwise. The temporary name keeps ``path``'s suffix,
    since some writers (``keras.Model.save``) choose the format by it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}"
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, payload: Any) -> None:
    write_text(path, json.dumps(payload, indent=1))


@contextmanager
def atomic_dir(path: str | Path, replace: bool = False) -> Iterator[Path]:
    """A fresh, uniquely named folder beside ``path`` to build its content in; renamed to
    ``path`` when the block ends without an exception, removed otherwise.

    The unique name lets two processes build the same folder at once (two folds started in
    parallel) without deleting each other's work. If ``path`` exists by the end, it is replaced
    when ``replace`` is set; otherwise the other process's finished copy is kept and this one
    discarded (both were built from the same inputs).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=path.parent))
    try:
        yield tmp
        if path.exists() and replace:
            shutil.rmtree(path)
        try:
            tmp.rename(path)
        except OSError:
            if not path.is_dir():  # the rename failed for another reason than a finished copy
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
