"""The data sources a run can read, as peers: one registry, one way in.

A :class:`Source` is one way of laying out labelled EEG on disk: its ``name`` (the value of
``data.layout`` that picks it), how it recognises a folder (:meth:`Source.detect`), how it opens
one split of it as a :class:`~hmsbrain.data.dataset.Dataset` (:meth:`Source.open`), the recipe
the command line trains it with, and the embedded demos it owns (``demo:<name>``). The library's
generic layouts register themselves in :mod:`hmsbrain.data.layouts`; an application registers
its own the same way from its own package (the HMS competition: :mod:`hmsbrain.hms.source`).

Adding a source is one module with one :func:`register_source` call, named in
:data:`SOURCE_MODULES`. Everything else goes through this registry: ``data.layout``,
detection, ``demo:<name>``, the recipe for a data folder (:func:`source_for`), and the source
tests, which are parametrized over it.

Detection asks every source in ``priority`` order (lowest first) and takes the first that
claims the folder, so a folder with the signs of several sources is read by the most specific.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hmsbrain.config import Config, ConfigError
from hmsbrain.data.base import DataError
from hmsbrain.data.dataset import Dataset

AUTO = "auto"
GENERIC_RECIPE = "generic"
DEMO_PREFIX = "demo:"

# The modules whose import registers the sources, imported by name the first time the registry
# is looked up rather than by import statements: hmsbrain.hms is an application on top of this
# library, and an import statement here would point up a layer (the data layer must work, and
# be testable, without it). The generic layouts are loaded the same way: they import this module
# to register, so a static import back would be circular.
SOURCE_MODULES = (
    "hmsbrain.data.layouts",
    "hmsbrain.data.markers",
    "hmsbrain.data.fif_epochs",
    "hmsbrain.data.bids",
    "hmsbrain.hms.source",
)

# ensure(folder, seed) -> the demo's folder, generated on first use and reused afterwards.
DemoMaker = Callable[[Path, int], Path]

_registered: dict[str, Source] = {}
_loaded = False


@dataclass(frozen=True, kw_only=True)
class Source(ABC):
    """One data source. Subclasses implement :meth:`detect` and :meth:`open`.

    ``signs`` says in a few words what :meth:`detect` looks for, for the error that names what
    a folder fitting no source lacks. ``default_demo`` is the demo an empty ``data.data_dir``
    means (at most one source has one); it is generated into ``data.demo_dir`` itself, every
    other demo into ``<data.demo_dir>-<name>``.
    """

    name: str
    priority: int
    signs: str
    recipe: str = GENERIC_RECIPE
    demos: Mapping[str, DemoMaker] = field(default_factory=dict)
    default_demo: str | None = None

    @abstractmethod
    def detect(self, root: Path) -> bool:
        """Whether ``root`` is data of this source, from its file names alone (cheap; reads no
        signals, so the command line can pick a recipe by it)."""

    @abstractmethod
    def open(
        self, cfg: Config, root: Path, split: str, window_seconds: float, fallback: bool
    ) -> Dataset:
        """Split ``split`` of the data in ``root``; ``window_seconds`` and ``fallback`` as in
        :func:`hmsbrain.data.sources.open_dataset`. A folder that does not fit the source is a
        :class:`DataError` naming it and what is missing."""


def register_source(source: Source) -> Source:
    """Add ``source`` to the registry (at import of its module); returns it.

    Names and demo names must be unique across sources, and only one source may have the
    default demo: otherwise ``data.layout`` or ``demo:<name>`` would depend on import order.
    """
    taken = {AUTO, *_registered}
    demos = [demo for s in _registered.values() for demo in s.demos]
    defaults = [s.default_demo for s in _registered.values() if s.default_demo]
    if source.name in taken or set(source.demos) & set(demos):
        raise ValueError(f"data source {source.name!r}: its name or a demo name is taken")
    if source.default_demo is not None and (source.default_demo not in source.demos or defaults):
        raise ValueError(f"data source {source.name!r}: default demo not its own, or not the only")
    _registered[source.name] = source
    return source


def all_sources() -> list[Source]:
    """Every registered source, in detection order."""
    global _loaded
    if not _loaded:
        for module in SOURCE_MODULES:
            importlib.import_module(module)
        _loaded = True
    return sorted(_registered.values(), key=lambda s: (s.priority, s.name))


def source_names() -> list[str]:
    """The values ``data.layout`` accepts besides ``auto``, in detection order."""
    return [s.name for s in all_sources()]


def get_source(name: str) -> Source:
    """The source ``data.layout=name`` picks."""
    for source in all_sources():
        if source.name == name:
            return source
    raise ConfigError(f"data.layout={name!r} is not one of {[AUTO, *source_names()]}")


def detect_source(root: Path) -> Source:
    """The first source, in priority order, that claims the folder ``root``."""
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found")
    sources = all_sources()
    for source in sources:
        if source.detect(root):
            return source
    looked = "; ".join(f"{s.signs} ({s.name})" for s in sources)
    raise DataError(
        f"{root}: cannot tell the data layout: looked for {looked}, and found none; set data.layout"
    )


def default_demo() -> str | None:
    """The demo an empty ``data.data_dir`` means, if a source declares one."""
    return next((s.default_demo for s in all_sources() if s.default_demo), None)


def demo_source(name: str) -> Source:
    """The source whose demo is ``demo:<name>``."""
    sources = all_sources()
    for source in sources:
        if name in source.demos:
            return source
    names = [demo for s in sources for demo in s.demos]
    raise DataError(f"unknown demo {name!r}; choose one of: {', '.join(names)}")


def demo_name(data_dir: str) -> str | None:
    """The demo a ``data.data_dir`` value names (``""`` is the default demo), or None."""
    if not data_dir:
        return default_demo()
    return data_dir[len(DEMO_PREFIX) :] if data_dir.startswith(DEMO_PREFIX) else None


def demo_folder(name: str, demo_dir: str) -> Path:
    """Where demo ``name`` is generated, given ``data.demo_dir``."""
    return Path(demo_dir) if name == default_demo() else Path(f"{demo_dir}-{name}")


def source_for(data_dir: str, layout: str = AUTO) -> Source:
    """The source that reads ``data.data_dir`` under ``data.layout=layout``, from names alone
    (no data read, no demo generated): the named source, a demo's owner, or the one detected.
    The command line picks its recipe by its ``recipe``. A folder that is missing or fits no
    source is the :class:`DataError` that opening it would raise."""
    if layout != AUTO:
        return get_source(layout)
    name = demo_name(data_dir)
    return demo_source(name) if name is not None else detect_source(Path(data_dir))
