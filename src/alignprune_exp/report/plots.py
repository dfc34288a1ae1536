"""PNG figures from run outputs: the paper's Figs. 1, 2, 3, A, B, C and per-epoch pruning diagnostics.

Inputs are what every run already writes: the ``runs*.csv`` rows (accuracy per cell), each run's
``metrics.jsonl`` (per-epoch curves) and ``snapshots.npz`` (per-sample losses and scores at 25/50/75/100%
of the budget, float16). A figure whose runs do not exist yet is skipped, never drawn from other runs.
"""

from __future__ import annotations

import functools
import json
import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from alignprune_exp.runs.snapshots import load_snapshots  # noqa: E402
from alignprune_exp.report.tables import (NOISE_NAMES, NOISE_ORDER, _method_key, _order, cell_stats, load_runs,  # noqa: E402
                     method_name, parse_overrides)

PNG_META = {"Software": None}  # no version string: the same inputs give the same bytes
EPOCH_CURVES = {
    "kept_noisy": ("prune/kept_noisy_fraction", "noisy fraction of the samples trained on"),
    "weighted_noisy_share": ("prune/weighted_noisy_share", "noisy share of the loss weight"),
    "score_auroc": ("score/noise_auroc", "pruning-score AUROC (noisy pruned first = 1)"),
    "loss_auroc": ("loss/noise_auroc", "last-loss AUROC (noisy = high loss)"),
}
ABLATIONS = {  # variant key -> (file name, paper figure, x label, log x)
    "pruner.policy.prune_prob": ("fig2a_prune_prob", "Fig. 2a", "pruning probability r", False),
    "pruner.scorer.window": ("fig2b_window", "Fig. 2b", "DAS window N (epochs)", False),
    "pruner.scorer.rho": ("fig2c_rho", "Fig. 2c", "correlation", False),
    "reference.fraction": ("fig3_reference_fraction", "Fig. 3", "reference set fraction", True),
    "reference.size": ("fig3_reference_size", "Fig. 3", "reference set size (images)", True),
}


def slug(text: str) -> str:
    """A file-name-safe version of a setting label."""
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", text).strip("_")[:120]


def resolve_run_dir(run_dir: str, results_dir: str | Path) -> Path | None:
    """The run folder a row points at, or its copy under ``results_dir`` when the tree was moved."""
    if not run_dir:
        return None
    path, root = Path(run_dir), Path(results_dir)
    for candidate in (path, root / path, root.parent / path):
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
            ax.errorbar(100 * m["target_ratio"], m["mean"], yerr=m["std"].fillna(0), marker="o", capsize=3,
                        color=colors[method], label=method_name(method))
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


def _legend(fig, axes) -> None:
    handles, labels = {}, []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    if labels:
        fig.legend([handles[lab] for lab in labels], labels, loc="upper center", ncol=min(len(labels), 4),
                   bbox_to_anchor=(0.5, 1.0 + 0.06 * math.ceil(len(labels) / 4)), frameon=False)
    fig.tight_layout()


def plot_static_vs_dynamic(cells: pd.DataFrame, path: Path) -> Path | None:
    """Fig. A: (a) static vs dynamic random, (b) Prune4ReL vs InfoBatch vs AlignPrune; bars per noise, per ratio."""
    panels = [("(a) static vs dynamic random", ["random_static", "random_dynamic"]),
              ("(b) static vs dynamic, loss vs DAS", ["prune4rel", "infobatch", "infobatch_das"])]
    base = cells[(cells["variant"] == "") & ~cells["is_full"]]
    ratios = sorted(base["ratio"].unique(), key=lambda r: base.loc[base["ratio"] == r, "target_ratio"].iloc[0])
    wanted = [(title, ratio, [m for m in methods if ((base["method"] == m) & (base["ratio"] == ratio)).any()])
              for ratio in ratios for title, methods in panels]
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
            ax.bar(np.arange(len(noises)) + (i - (len(methods) - 1) / 2) * width, means, width,
                   yerr=np.nan_to_num(stds), capsize=2, label=method_name(method))
        ax.set_xticks(np.arange(len(noises)), [NOISE_NAMES.get(z, z) for z in noises], rotation=30)
        ax.set_title(f"{title}, {ratio}")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(axis="y", alpha=0.3)
    _legend(fig, axes)
    return _save(fig, path)


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


def plot_snapshot_histograms(rows: pd.DataFrame, results_dir: Path, path: Path, array: str, methods: list[str],
                             xlabel: str, mean_line: bool) -> Path | None:
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
            ax.set_title(f"{method_name(method)}, {NOISE_NAMES.get(noise, noise)}, s{seed}\n"
                         f"epoch {int(data['epochs'][k])} ({100 * float(data['progress'][k]):.0f}% budget)", fontsize=8)
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
        for _, label, seed, m in (c for c in curves if c[0] == noise):
            x = m["progress"] if "progress" in m else m["epoch"]
            ax.plot(100 * x if "progress" in m else x, m[key], color=colors[label], lw=1, alpha=0.85, label=label)
        ax.set_title(NOISE_NAMES.get(noise, noise))
        ax.set_xlabel("budget spent (%)")
        ax.set_ylabel(ylabel, fontsize=8)
        ax.grid(alpha=0.3)
    _legend(fig, axes)
    return _save(fig, path)


def plot_ablation(cells: pd.DataFrame, key: str, path: Path, title: str, xlabel: str, logx: bool) -> Path | None:
    """Figs. 2-3: accuracy vs one overridden hyper-parameter (variants of exactly that key, >= 2 values), a line per noise."""
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
                ax.errorbar(s["x"], s["mean"], yerr=s["std"].fillna(0), marker="o", capsize=3,
                            label=NOISE_NAMES.get(noise, noise))
            else:
                s = s.sort_values("value")
                ax.errorbar(s["value"], s["mean"], yerr=s["std"].fillna(0), marker="o", capsize=3, ls="none",
                            label=NOISE_NAMES.get(noise, noise))
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
        jobs = [
            lambda: plot_acc_vs_ratio(scells, folder / "fig1_acc_vs_ratio.png"),
            lambda: plot_static_vs_dynamic(scells, folder / "figA_static_vs_dynamic.png"),
            lambda: plot_snapshot_histograms(srows, results_dir, folder / "figB_loss_histograms.png", "losses",
                                             ["full", "infobatch"], "last loss", mean_line=True),
            lambda: plot_loss_trajectories(srows, results_dir, folder / "figC_loss_trajectories.png"),
            lambda: plot_snapshot_histograms(srows, results_dir, folder / "das_histograms.png", "scores", das,
                                             "DAS", mean_line=True),
            *[(lambda k=k, f=f, lab=lab: plot_epoch_curves(srows, results_dir, folder / f"epoch_{f}.png", k, lab))
              for f, (k, lab) in EPOCH_CURVES.items()],
            *[(lambda k=k, v=v: plot_ablation(scells, k, folder / f"{v[0]}.png", v[1], v[2], v[3]))
              for k, v in ABLATIONS.items()],
        ]
        written += [p for p in (job() for job in jobs) if p is not None]
    return written


__all__ = ["make_plots", "plot_acc_vs_ratio", "plot_static_vs_dynamic", "plot_snapshot_histograms",
           "plot_loss_trajectories", "plot_epoch_curves", "plot_ablation", "resolve_run_dir", "load_metrics"]
