"""A check's result, its one-line form, its plots and the Markdown report of a diagnosis."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hmsbrain.atomic import atomic_path, write_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
REPORT_FILE = "report.md"


@dataclass
class Check:
    """One check's verdict: ``measured`` are the numbers behind it, ``advice`` what to do."""

    name: str
    status: str  # PASS, WARN or FAIL
    measured: str
    advice: str = ""
    plot: Path | None = None

    def line(self) -> str:
        text = f"{self.status} {self.name}: {self.measured}"
        return f"{text} -> {self.advice}" if self.advice else text


def new_figure(width: float = 6.0, height: float = 3.5) -> tuple[Figure, object]:
    """A matplotlib figure on the Agg backend (diagnose runs on machines without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def save_figure(fig: Figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_report(checks: Sequence[Check], path: Path, header: Sequence[str]) -> Path:
    """``report.md``: the recipe lines in ``header``, one table row per check, then the plots."""
    counts = {s: sum(c.status == s for c in checks) for s in (FAIL, WARN, PASS)}
    lines = [
        "# Diagnosis",
        "",
        *header,
        "",
        f"{counts[FAIL]} FAIL, {counts[WARN]} WARN, {counts[PASS]} PASS.",
        "",
        "| status | check | measured | what to do |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {c.status} | {c.name} | {_cell(c.measured)} | {_cell(c.advice)} |" for c in checks
    ]
    for check in checks:
        if check.plot is not None:
            lines += ["", f"## {check.name}", "", f"![{check.name}]({check.plot.name})"]
    write_text(path, "\n".join(lines) + "\n")
    return path
