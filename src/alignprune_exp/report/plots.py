"""PNG figures from run outputs: the paper's Figs. 1, 2, 3, A, B, C and per-epoch pruning diagnostics.

Inputs are what every run already writes: the ``runs*.csv`` rows (accuracy per cell), each run's
``metrics.jsonl`` (per-epoch curves) and ``snapshots.npz`` (per-sample losses and scores at 25/50/75/100%
of the budget, float16). A figure whose runs do not exist yet is skipped, never drawn from other runs.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from alignprune_exp.report.cells import (
    NOISE_NAMES,
    NOISE_ORDER,
    _method_key,
    _order,
    cell_stats,
    load_runs,
    method_name,
    parse_overrides,
)
from alignprune_exp.report.figures import _colors, _grid, _legend, _save, slug
from alignprune_exp.report.run_plots import (
    EPOCH_CURVES,
    _run_folders,
    load_metrics,
    plot_epoch_curves,
    plot_loss_trajectories,
    plot_snapshot_histograms,
    resolve_run_dir,
)

ABLATIONS = {  # variant key -> (file name, paper figure, x label, log x)
    "pruner.policy.prune_prob": ("fig2a_prune_prob", "Fig. 2a", "pruning probability r", False),
    "pruner.scorer.window": ("fig2b_window", "Fig. 2b", "DAS window N (epochs)", False),
    "pruner.scorer.rho": ("fig2c_rho", "Fig. 2c", "correlation", False),
    "reference.fraction": ("fig3_reference_fraction", "Fig. 3", "reference set fraction", True),
    "reference.size": ("fig3_reference_size", "Fig. 3", "reference set size (images)", True),
}


def plot_acc_vs_ratio(cells: pd.DataFrame, path: Path) -> Path | None:
    """Fig. 1 style: accuracy vs pruning ratio per method (std bars), Full-training dashed; a panel per noise."""
    pruned = cells[~cells["is_full"] & np.isfinite(cells["target_ratio"])]
    if pruned.empty:
        return None
    noises = _order(cells["noise"], NOISE_ORDER)
    colors = _colors(list(pruned["method"].unique()))
    fig, axes = _grid(len(noises))
    for ax, noise in zip(axes, noises):
        sub = pruned[pruned["noise"] == noise]
        for method in sorted(sub["method"].unique(), key=_method_key):
            m = sub[sub["method"] == method].sort_values("target_ratio")
            ax.errorbar(
                100 * m["target_ratio"],
                m["mean"],
                yerr=m["std"].fillna(0),
                marker="o",
                capsize=3,
                color=colors[method],
                label=method_name(method),
            )
        full = cells[cells["is_full"] & (cells["noise"] == noise)]
        if len(full):
            ax.axhline(full["mean"].iloc[0], color="black", ls="--", lw=1, label="Full-training")
        ax.set_xticks(sorted({round(100 * r) for r in pruned["target_ratio"]}))
        ax.set_title(NOISE_NAMES.get(noise, noise))
        ax.set_xlabel("pruning ratio (%)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    _legend(fig, axes)
    return _save(fig, path)


def plot_static_vs_dynamic(cells: pd.DataFrame, path: Path) -> Path | None:
    """Fig. A: (a) static vs dynamic random, (b) Prune4ReL vs InfoBatch vs AlignPrune; bars per noise, per ratio."""
    panels = [
        ("(a) static vs dynamic random", ["random_static", "random_dynamic"]),
        ("(b) static vs dynamic, loss vs DAS", ["prune4rel", "infobatch", "infobatch_das"]),
    ]
    base = cells[(cells["variant"] == "") & ~cells["is_full"]]
    ratios = sorted(base["ratio"].unique(), key=lambda r: base.loc[base["ratio"] == r, "target_ratio"].iloc[0])
    wanted = [
        (title, ratio, [m for m in methods if ((base["method"] == m) & (base["ratio"] == ratio)).any()])
        for ratio in ratios
        for title, methods in panels
    ]
    wanted = [w for w in wanted if w[2]]
    if not wanted or not any(len(w[2]) > 1 for w in wanted):
        return None
    noises = _order(base["noise"], NOISE_ORDER)
    fig, axes = _grid(len(wanted), width=max(3.6, 0.9 * len(noises) + 1.5))
    for ax, (title, ratio, methods) in zip(axes, wanted):
        width = 0.8 / len(methods)
        for i, method in enumerate(methods):
            sub = base[(base["method"] == method) & (base["ratio"] == ratio)].set_index("noise")
            means = [sub["mean"].get(z, np.nan) for z in noises]
            stds = [sub["std"].get(z, np.nan) for z in noises]
            ax.bar(
                np.arange(len(noises)) + (i - (len(methods) - 1) / 2) * width,
                means,
                width,
                yerr=np.nan_to_num(stds),
                capsize=2,
                label=method_name(method),
            )
        ax.set_xticks(np.arange(len(noises)), [NOISE_NAMES.get(z, z) for z in noises], rotation=30)
        ax.set_title(f"{title}, {ratio}")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(axis="y", alpha=0.3)
    _legend(fig, axes)
    return _save(fig, path)


def plot_ablation(cells: pd.DataFrame, key: str, path: Path, title: str, xlabel: str, logx: bool) -> Path | None:
    """Figs. 2-3: accuracy vs one overridden hyper-parameter (variants of exactly that key, >= 2 values), a line
    per noise."""
    points = []
    for r in cells[cells["variant"] != ""].itertuples():
        variant = parse_overrides(r.variant)
        if list(variant) == [key]:
            points.append((r.ratio, r.pruner, r.noise, variant[key], r.mean, r.std))
    frame = pd.DataFrame(points, columns=["ratio", "pruner", "noise", "value", "mean", "std"])
    if frame["value"].nunique() < 2:  # one value is no ablation
        return None
    numeric = pd.to_numeric(frame["value"], errors="coerce")
    panels = sorted(set(zip(frame["pruner"], frame["ratio"])))
    fig, axes = _grid(len(panels), width=4.2)
    for ax, (pruner, ratio) in zip(axes, panels):
        sub = frame[(frame["pruner"] == pruner) & (frame["ratio"] == ratio)]
        for noise in _order(sub["noise"], NOISE_ORDER):
            s = sub[sub["noise"] == noise]
            if numeric.notna().all():
                s = s.assign(x=pd.to_numeric(s["value"])).sort_values("x")
                ax.errorbar(
                    s["x"],
                    s["mean"],
                    yerr=s["std"].fillna(0),
                    marker="o",
                    capsize=3,
                    label=NOISE_NAMES.get(noise, noise),
                )
            else:
                s = s.sort_values("value")
                ax.errorbar(
                    s["value"],
                    s["mean"],
                    yerr=s["std"].fillna(0),
                    marker="o",
                    capsize=3,
                    ls="none",
                    label=NOISE_NAMES.get(noise, noise),
                )
        if logx and numeric.notna().all():
            ax.set_xscale("log")
        ax.set_title(f"{title}: {method_name(pruner)}, {ratio}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    _legend(fig, axes)
    return _save(fig, path)


def make_plots(results_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Every figure the runs under ``results_dir`` support, as PNGs in ``out_dir`` (one folder per setting
    when there are several); returns the paths written."""
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    _run_folders.cache_clear()
    rows = load_runs(results_dir)
    cells = cell_stats(rows)
    settings = sorted(rows["setting"].unique())
    written: list[Path] = []
    for setting in settings:
        folder = out_dir if len(settings) == 1 else out_dir / slug(setting)
        srows, scells = rows[rows["setting"] == setting], cells[cells["setting"] == setting]
        das = sorted((m for m in srows["method"].unique() if "das" in m.split(" [")[0]), key=_method_key)
        job = functools.partial
        jobs = [
            job(plot_acc_vs_ratio, scells, folder / "fig1_acc_vs_ratio.png"),
            job(plot_static_vs_dynamic, scells, folder / "figA_static_vs_dynamic.png"),
            job(
                plot_snapshot_histograms,
                srows,
                results_dir,
                folder / "figB_loss_histograms.png",
                "losses",
                ["full", "infobatch"],
                "last loss",
                mean_line=True,
            ),
            job(plot_loss_trajectories, srows, results_dir, folder / "figC_loss_trajectories.png"),
            job(
                plot_snapshot_histograms,
                srows,
                results_dir,
                folder / "das_histograms.png",
                "scores",
                das,
                "DAS",
                mean_line=True,
            ),
            *[
                job(plot_epoch_curves, srows, results_dir, folder / f"epoch_{f}.png", k, lab)
                for f, (k, lab) in EPOCH_CURVES.items()
            ],
            *[job(plot_ablation, scells, k, folder / f"{v[0]}.png", v[1], v[2], v[3]) for k, v in ABLATIONS.items()],
        ]
        written += [p for p in (j() for j in jobs) if p is not None]
    return written


__all__ = [
    "make_plots",
    "plot_acc_vs_ratio",
    "plot_static_vs_dynamic",
    "plot_snapshot_histograms",
    "plot_loss_trajectories",
    "plot_epoch_curves",
    "plot_ablation",
    "resolve_run_dir",
    "load_metrics",
]
