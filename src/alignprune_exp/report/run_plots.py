"""Per-run figures: snapshot histograms of scores and losses, loss trajectories and per-epoch curves.

They read what each run folder holds (``metrics.jsonl``, ``snapshots.npz``); a figure whose runs do not exist
yet is skipped, never drawn from other runs.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd

from alignprune_exp.report.cells import NOISE_NAMES, NOISE_ORDER, _method_key, _order, method_name
from alignprune_exp.report.figures import _colors, _grid, _legend, _save, plt
from alignprune_exp.runs.snapshots import load_snapshots

EPOCH_CURVES = {
    "test_acc": ("test/acc", "test accuracy (%)"),
    "below_mean": ("prune/below_mean_fraction", "fraction below the score mean (prunable)"),
    "kept_noisy": ("prune/kept_noisy_fraction", "noisy fraction of the samples trained on"),
    "weighted_noisy_share": ("prune/weighted_noisy_share", "noisy share of the loss weight"),
    "score_auroc": ("score/noise_auroc", "pruning-score AUROC (noisy pruned first = 1)"),
    "loss_auroc": ("loss/noise_auroc", "last-loss AUROC (noisy = high loss)"),
}


def resolve_run_dir(run_dir: str, results_dir: str | Path) -> Path | None:
    """The run folder a row points at, or its copy under ``results_dir`` when the tree was moved."""
    if not run_dir:
        return None
    path, root = Path(run_dir), Path(results_dir)
    # A relative folder is relative to the results folder (how rows record it); an absolute one may have moved.
    candidates = (path,) if path.is_absolute() else (root / path, root.parent / path, path)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    matches = _run_folders(str(root)).get(path.name, [])
    same_parent = [p for p in matches if p.parent.name == path.parent.name]
    return (same_parent or matches or [None])[0]


@functools.lru_cache(maxsize=8)
def _run_folders(root: str) -> dict[str, list[Path]]:
    """Folders holding a metrics.jsonl under ``root``, by name (one walk per results tree)."""
    index: dict[str, list[Path]] = {}
    for metrics in sorted(Path(root).rglob("metrics.jsonl")):
        index.setdefault(metrics.parent.name, []).append(metrics.parent)
    return index


def load_metrics(run_dir: Path) -> pd.DataFrame:
    """A run's per-epoch records (``metrics.jsonl``) as a frame; empty when absent."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return pd.DataFrame()
    return pd.DataFrame([json.loads(line) for line in path.read_text().splitlines() if line.strip()])


def _runs_of(rows: pd.DataFrame, results_dir: Path, method: str | None = None, ratio: str | None = None):
    """(noise, seed, run dir) of the matching rows, lowest seed first per noise."""
    sub = rows
    if method is not None:
        sub = sub[sub["method"] == method]
    if ratio is not None:
        sub = sub[sub["ratio"] == ratio]
    out = []
    for r in sub.itertuples():
        run = resolve_run_dir(r.run_dir, results_dir)
        if run is not None:
            out.append((r.noise, int(r.seed) if str(r.seed).lstrip("-").isdigit() else 0, run))
    rank = {z: i for i, z in enumerate(NOISE_ORDER)}
    return sorted(out, key=lambda t: (rank.get(t[0], len(rank)), t[0], t[1], str(t[2])))


def _first_per_noise(runs):
    seen, out = set(), []
    for noise, seed, run in runs:
        if noise not in seen:
            seen.add(noise)
            out.append((noise, seed, run))
    return out


def plot_snapshot_histograms(
    rows: pd.DataFrame, results_dir: Path, path: Path, array: str, methods: list[str], xlabel: str, mean_line: bool
) -> Path | None:
    """Per-sample ``losses`` or ``scores`` from snapshots.npz, clean vs noisy, a row per noise, a column per point."""
    panels = []
    for method in methods:
        for noise, seed, run in _first_per_noise(_runs_of(rows, results_dir, method)):
            snap = run / "snapshots.npz"
            if snap.is_file():
                data = load_snapshots(snap)
                if data["is_noisy"].any():
                    panels.append((method, noise, seed, data))
    if not panels:
        return None
    cols = max(len(p[3]["progress"]) for p in panels)
    fig, axes = plt.subplots(len(panels), cols, figsize=(3.2 * cols, 2.4 * len(panels)), squeeze=False)
    for row_axes, (method, noise, seed, data) in zip(axes, panels):
        noisy = data["is_noisy"].astype(bool)
        for k, ax in enumerate(row_axes):
            if k >= len(data["progress"]):
                ax.set_visible(False)
                continue
            values = data[array][k].astype(np.float32)
            finite = np.isfinite(values)
            bins = np.histogram_bin_edges(values[finite], bins=40)
            ax.hist(values[finite & ~noisy], bins=bins, alpha=0.6, density=True, label="clean", color="tab:blue")
            ax.hist(values[finite & noisy], bins=bins, alpha=0.6, density=True, label="noisy", color="tab:red")
            if mean_line:
                ax.axvline(float(np.mean(values[finite])), color="black", ls="--", lw=1, label="mean (InfoBatch cut)")
            ax.set_title(
                f"{method_name(method)}, {NOISE_NAMES.get(noise, noise)}, s{seed}\n"
                f"epoch {int(data['epochs'][k])} ({100 * float(data['progress'][k]):.0f}% budget)",
                fontsize=8,
            )
            ax.set_xlabel(xlabel, fontsize=8)
    _legend(fig, list(axes.flat))
    return _save(fig, path)


def plot_loss_trajectories(rows: pd.DataFrame, results_dir: Path, path: Path, method: str = "full") -> Path | None:
    """Fig. C: mean last loss of clean vs noisy training samples per epoch (and the reference set's loss)."""
    runs = [(n, s, load_metrics(r)) for n, s, r in _first_per_noise(_runs_of(rows, results_dir, method))]
    runs = [(n, s, m) for n, s, m in runs if "loss/mean_noisy" in m and m["loss/mean_noisy"].notna().any()]
    if not runs:
        return None
    fig, axes = _grid(len(runs))
    for ax, (noise, seed, m) in zip(axes, runs):
        ax.plot(m["epoch"], m["loss/mean_clean"], color="tab:blue", label="clean samples")
        ax.plot(m["epoch"], m["loss/mean_noisy"], color="tab:red", label="noisy samples")
        if "ref/loss" in m:
            ax.plot(m["epoch"], m["ref/loss"], color="black", ls="--", lw=1, label="clean reference set")
        ax.set_title(f"{method_name(method)}, {NOISE_NAMES.get(noise, noise)}, s{seed}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean loss")
        ax.grid(alpha=0.3)
    _legend(fig, axes)
    return _save(fig, path)


def plot_epoch_curves(rows: pd.DataFrame, results_dir: Path, path: Path, key: str, ylabel: str) -> Path | None:
    """A per-epoch metric against budget spent, a line per run (colour = method), a panel per noise."""
    curves = []
    for method in sorted(rows["method"].unique(), key=_method_key):
        for ratio in sorted(rows.loc[rows["method"] == method, "ratio"].unique()):
            for noise, seed, run in _runs_of(rows, results_dir, method, ratio):
                m = load_metrics(run)
                if key in m and m[key].notna().any():
                    curves.append((noise, f"{method_name(method)} ({ratio})", seed, m))
    if not curves:
        return None
    noises = _order([c[0] for c in curves], NOISE_ORDER)
    colors = _colors(sorted({c[1] for c in curves}))
    fig, axes = _grid(len(noises))
    for ax, noise in zip(axes, noises):
        for _, label, _seed, m in (c for c in curves if c[0] == noise):
            x = m["progress"] if "progress" in m else m["epoch"]
            ax.plot(100 * x if "progress" in m else x, m[key], color=colors[label], lw=1, alpha=0.85, label=label)
        ax.set_title(NOISE_NAMES.get(noise, noise))
        ax.set_xlabel("budget spent (%)")
        ax.set_ylabel(ylabel, fontsize=8)
        ax.grid(alpha=0.3)
    _legend(fig, axes)
    return _save(fig, path)
