"""Shared figure plumbing for the report's PNGs: the Agg backend, byte-stable saving, grids, colours, legends."""

from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from alignprune_exp.report.cells import _method_key  # noqa: E402

PNG_META = {"Software": None}  # no version string: the same inputs give the same bytes


def slug(text: str) -> str:
    """A file-name-safe version of a setting label."""
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", text).strip("_")[:120]


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata=PNG_META)
    plt.close(fig)
    return path


def _grid(n: int, width: float = 3.6, height: float = 3.0):
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _colors(methods: list[str]) -> dict[str, tuple]:
    cmap, size = (plt.get_cmap("tab10"), 10) if len(methods) <= 10 else (plt.get_cmap("tab20"), 20)
    return {m: cmap(i % size) for i, m in enumerate(sorted(methods, key=_method_key))}


def _legend(fig, axes) -> None:
    handles, labels = {}, []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    if labels:
        fig.legend(
            [handles[lab] for lab in labels],
            labels,
            loc="upper center",
            ncol=min(len(labels), 4),
            bbox_to_anchor=(0.5, 1.0 + 0.06 * math.ceil(len(labels) / 4)),
            frameon=False,
        )
    fig.tight_layout()
