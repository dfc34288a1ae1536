"""Paper-style result tables from ``runs*.csv`` rows (paper Tables 1, 2, B, C and 3).

Rows are pruning methods grouped by pruning ratio, columns are noise types; each cell is the mean over
seeds of one metric (final test accuracy by default, as the paper reports), optionally with its std, and
its gap to Full-training (``pruner=full`` at ``ratio=r0``, same setting and noise). Missing cells stay
missing ("–"): nothing is ever filled in from another cell. Output is deterministic: the same rows give
the same bytes, whatever their order in the files.

One table per *setting*: the experiment name, dataset, model, epochs, training-set size and test split,
plus any overrides that apply to every method (``model.width=16``). Overrides of the method itself
(``pruner.*``, ``reference*``, ``loss*``) make a variant row, e.g. ``InfoBatch [pruner.policy.rescale=false]``,
so a variant is never averaged into its base method.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

MISSING = "–"

METHOD_ORDER = [
    "full", "random_static", "smalll", "margin", "forgetting", "grand", "el2n", "moderate", "ssp", "prune4rel",
    "dyn_unc", "dual", "random_dynamic", "divbs", "ies", "infobatch", "infobatch_das", "infobatch_das_expanding",
    "seta", "seta_das",
]
METHOD_NAMES = {
    "full": "Full-training", "random_static": "Static Random", "smalll": "SmallL", "margin": "Margin",
    "forgetting": "Forget", "grand": "GraNd", "el2n": "EL2N", "moderate": "Moderate", "ssp": "SSP",
    "prune4rel": "Prune4ReL", "dyn_unc": "Dyn-Unc", "dual": "DUAL", "random_dynamic": "Dynamic Random",
    "divbs": "DivBS", "ies": "IES", "infobatch": "InfoBatch", "infobatch_das": "InfoBatch + Ours",
    "infobatch_das_expanding": "InfoBatch + Ours (expanding window)", "seta": "SeTa", "seta_das": "SeTa + Ours",
}
NOISE_ORDER = ["clean", "real", "real_aggre", "real_rand1", "real_rand2", "real_rand3", "real_worst",
               "sym0.2", "sym0.5", "sym0.8", "asym0.2", "asym0.4", "pairflip0.45"]
NOISE_NAMES = {"clean": "Clean", "real": "Real", "real_aggre": "Real-A", "real_rand1": "Real-R1",
               "real_rand2": "Real-R2", "real_rand3": "Real-R3", "real_worst": "Real-W", "sym0.2": "Sym 0.2",
               "sym0.5": "Sym 0.5", "sym0.8": "Sym 0.8", "asym0.2": "Asym 0.2", "asym0.4": "Asym 0.4",
               "pairflip0.45": "Pairflip 0.45"}
DATASET_NAMES = {"cifar100": "CIFAR-100N", "cifar10": "CIFAR-10N", "digits": "digits"}
METRIC_NAMES = {"final_test_acc": "Final test accuracy (%)", "best_test_acc": "Best test accuracy (%)",
                "wall_time_s": "Wall time (s)", "mean_score_noise_auroc": "Score noise AUROC (mean over epochs)",
                "mean_kept_noisy_fraction": "Noisy fraction among kept samples (mean over epochs)"}

# Overrides that place a run in a cell (or only say where/how it ran) rather than change what it computes.
CELL_KEYS = {"dataset", "noise", "ratio", "seed", "pruner", "experiment", "profile", "data_dir", "results_dir",
             "resume", "checkpoint_every", "stop_grace_s", "results_file",
             "device", "progress_bar", "num_threads", "logger", "eval_every", "eval_batch_size", "snapshots",
             "checkpoint", "amp", "warmup.cache_dir", "model", "epochs", "train_subset", "test_split",
             "holdout_size", "experiment_name"}
VARIANT_PREFIXES = ("pruner.", "reference", "loss")
SETTING_COLUMNS = ["experiment", "dataset", "model", "epochs", "n_train", "n_test", "test_split"]
_OVERRIDE_SPLIT = re.compile(r",(?=[+~]*[A-Za-z_][\w.@/-]*=)")


def parse_overrides(text: str) -> dict[str, str]:
    """``"a=1,+b=x,y,c=[1,2]"``-style task overrides into ``{key: value}`` (``+``/``~`` prefixes dropped)."""
    if not isinstance(text, str) or not text.strip():
        return {}
    out = {}
    for item in _OVERRIDE_SPLIT.split(text.strip()):
        key, sep, value = item.partition("=")
        if sep:
            out[key.lstrip("+~")] = value
    return out


def _split_overrides(text: str) -> tuple[str, str]:
    """(method variant, setting extras) from a row's overrides, each as sorted ``k=v`` joined by commas."""
    variant, extra = [], []
    for key, value in sorted(parse_overrides(text).items()):
        if key in CELL_KEYS or key.startswith(("hydra.", "logger.")):
            continue
        (variant if key.startswith(VARIANT_PREFIXES) else extra).append(f"{key}={value}")
    return ",".join(variant), ",".join(extra)


def load_runs(results_dir: str | Path) -> pd.DataFrame:
    """Every readable row of ``results_dir/runs*.csv`` (all column sets, every machine's file), with ``variant``
    and ``setting`` columns. Unreadable rows and runs that did not complete (``status`` diverged) are left
    out and noted in ``rows.attrs["problems"]``.

    Reruns of the same cell and seed in the same setting keep only the latest row (by timestamp), so a
    repeated job never counts twice.
    """
    from alignprune_exp.report.read import load_results, report

    rows, problems = load_results(results_dir)
    for col in ("experiment", "dataset", "model", "epochs", "n_train", "n_test", "test_split", "noise", "pruner",
                "ratio", "seed", "target_ratio", "overrides", "timestamp", "run_dir", "status"):
        if col not in rows:
            rows[col] = ""
    unfinished = ~rows["status"].isin(["", "completed"])
    if unfinished.any():
        problems.append(f"{int(unfinished.sum())} row(s) of runs that did not complete (status "
                        f"{', '.join(sorted(set(rows.loc[unfinished, 'status'])))}) left out")
    rows = rows[~unfinished].copy()
    report(problems)
    split = rows["overrides"].map(_split_overrides)
    rows["variant"] = split.map(lambda t: t[0])
    rows["setting_extra"] = split.map(lambda t: t[1])
    rows["method"] = [p if not v else f"{p} [{v}]" for p, v in zip(rows["pruner"], rows["variant"])]
    rows["setting"] = rows.apply(setting_label, axis=1)
    rows = rows.sort_values(["timestamp", "run_dir"], kind="stable")
    rows = rows.drop_duplicates(["setting", "method", "ratio", "noise", "seed"], keep="last")
    rows = rows.reset_index(drop=True)
    rows.attrs["problems"] = problems
    return rows


def setting_label(row) -> str:
    """A readable, unique name for a row's setting: experiment, dataset, scale and shared overrides."""
    dataset = DATASET_NAMES.get(row["dataset"], row["dataset"])
    parts = [f"{row['model']}", f"{row['epochs']} epochs", f"{row['n_train']} train",
             f"{row['test_split']} test {row['n_test']}"]
    if row.get("setting_extra"):
        parts.append(row["setting_extra"])
    return f"{row['experiment'] or 'no experiment'} | {dataset} ({', '.join(parts)})"


def _num(values) -> np.ndarray:
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)


def cell_stats(rows: pd.DataFrame, metric: str = "final_test_acc") -> pd.DataFrame:
    """Mean, std (ddof 1; NaN for one seed) and seed count per (setting, ratio, method, noise), plus the gap to Full.

    Columns: setting, dataset, ratio, target_ratio, method, pruner, variant, noise, mean, std, n, full_mean, delta.
    Full-training is ``pruner=full`` at ``ratio=r0`` (target ratio 0) with no variant; its own row has no delta.
    """
    if metric not in rows:
        raise KeyError(f"metric {metric!r} is not a column of the results rows")
    data = rows.assign(value=_num(rows[metric]), target=_num(rows["target_ratio"]))
    data = data[np.isfinite(data["value"])]
    keys = ["setting", "dataset", "ratio", "method", "pruner", "variant", "noise"]
    out = []
    for key, group in data.groupby(keys, sort=True):
        values = np.sort(group["value"].to_numpy())
        target = group["target"].iloc[0]
        out.append({**dict(zip(keys, key)), "target_ratio": float(target) if np.isfinite(target) else math.nan,
                    "mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
                    "n": int(len(values))})
    cells = pd.DataFrame(out, columns=[*keys, "target_ratio", "mean", "std", "n"])
    is_full = (cells["pruner"] == "full") & (cells["variant"] == "") & (
        (cells["ratio"] == "r0") | (cells["target_ratio"] == 0))
    full = cells[is_full].set_index(["setting", "noise"])["mean"]
    cells["is_full"] = is_full
    cells["full_mean"] = [full.get((s, z), math.nan) for s, z in zip(cells["setting"], cells["noise"])]
    cells["delta"] = np.where(is_full, math.nan, cells["mean"] - cells["full_mean"])
    return cells


def _order(values, order) -> list:
    rank = {v: i for i, v in enumerate(order)}
    return sorted(set(values), key=lambda v: (rank.get(v, len(order)), v))


def _method_key(method: str) -> tuple:
    base, _, variant = method.partition(" [")
    rank = METHOD_ORDER.index(base) if base in METHOD_ORDER else len(METHOD_ORDER)
    return rank, base, variant


def method_name(method: str) -> str:
    base, _, variant = method.partition(" [")
    name = METHOD_NAMES.get(base, base)
    return f"{name} [{variant}" if variant else name


def _fmt(x: float, signed: bool = False) -> str:
    if not np.isfinite(x):
        return MISSING
    x = round(float(x), 1)
    if x == 0:
        x = 0.0  # no "-0.0"
    return f"{x:+.1f}" if signed else f"{x:.1f}"


@dataclass
class Table:
    """One setting's table: ratio groups of method rows over noise columns, cells as (mean, std, n, delta)."""

    setting: str
    metric: str
    noises: list[str]
    full: dict[str, tuple] | None
    groups: list[tuple[str, list[tuple[str, dict[str, tuple]]]]] = field(default_factory=list)
    modal_n: int = 0


def build_tables(cells: pd.DataFrame, metric: str = "final_test_acc", methods: list[str] | None = None) -> list[Table]:
    """Lay the cells out as paper tables, one per setting; ``methods`` forces rows even when all missing."""
    tables = []
    for setting in sorted(cells["setting"].unique()):
        sub = cells[cells["setting"] == setting]
        noises = _order(sub["noise"], NOISE_ORDER)
        lookup = {(r.ratio, r.method, r.noise): (r.mean, r.std, r.n, r.delta) for r in sub.itertuples()}
        full_rows = sub[sub["is_full"]]
        full = {r.noise: (r.mean, r.std, r.n, math.nan) for r in full_rows.itertuples()} or None
        rest = sub[~sub["is_full"]]
        ratio_of = rest.groupby("ratio")["target_ratio"].first().to_dict()
        ratios = sorted(ratio_of, key=lambda r: (ratio_of[r] if np.isfinite(ratio_of[r]) else math.inf, r))
        table = Table(setting=setting, metric=metric, noises=noises, full=full,
                      modal_n=int(pd.Series(sub["n"]).mode().max()) if len(sub) else 0)
        for ratio in ratios:
            present = set(rest.loc[rest["ratio"] == ratio, "method"])
            wanted = sorted(present | (set(methods or []) - {"full"}), key=_method_key)
            rows = [(m, {z: lookup.get((ratio, m, z)) for z in noises}) for m in wanted]
            table.groups.append((ratio, rows))
        tables.append(table)
    return tables


def _ratio_title(ratio: str) -> str:
    m = re.fullmatch(r"r(\d+)", ratio)
    return f"Prune ratio ~{m.group(1)}%" if m else f"Prune ratio {ratio}"


def _cell_text(cell, std: bool, modal_n: int, latex: bool) -> str:
    if cell is None or not np.isfinite(cell[0]):
        return "--" if latex else MISSING
    mean, sd, n, delta = cell
    if latex:
        text = _fmt(mean)
        if std:
            text += r"{\scriptsize$\pm$" + _fmt(sd) + "}" if np.isfinite(sd) else ""
        if np.isfinite(delta):
            text += f"$^{{{_fmt(delta, signed=True)}}}$"
        if n != modal_n:
            text += rf"\,{{\tiny[n={n}]}}"
        return text
    text = _fmt(mean)
    if std and np.isfinite(sd):
        text += f" ± {_fmt(sd)}"
    if np.isfinite(delta):
        text += f" ({_fmt(delta, signed=True)})"
    if n != modal_n:
        text += f" [n={n}]"
    return text


def _mean_delta(cells: dict) -> float:
    deltas = [c[3] for c in cells.values() if c is not None]
    if len(deltas) != len(cells) or not deltas or not all(np.isfinite(deltas)):
        return math.nan
    return float(np.mean(deltas))


def _caption(table: Table, std: bool) -> str:
    what = METRIC_NAMES.get(table.metric, table.metric)
    return (f"{what}, mean{' ± std' if std else ''} over seeds (n = {table.modal_n} per cell unless marked [n=k]); "
            f"(±x) = gap to Full-training (full data, ratio r0); Mean Δ = mean gap over the noise columns, "
            f"only when every column has one; {MISSING} = missing (not run yet).")


def render_markdown(table: Table, std: bool = False) -> str:
    """A GitHub-markdown table with its setting as heading and a one-line caption."""
    cols = ["Method", *(NOISE_NAMES.get(z, z) for z in table.noises), "Mean Δ"]
    lines = [f"### {table.setting}", "", _caption(table, std), "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    full = table.full or {}
    lines.append("| Full-training | " + " | ".join(_cell_text(full.get(z), std, table.modal_n, False)
                                                   for z in table.noises) + f" | {MISSING} |")
    for ratio, rows in table.groups:
        lines.append(f"| **{_ratio_title(ratio)}** |" + " |" * len(table.noises) + " |")
        for method, cells in rows:
            lines.append(f"| {method_name(method)} | "
                         + " | ".join(_cell_text(cells[z], std, table.modal_n, False) for z in table.noises)
                         + f" | {_fmt(_mean_delta(cells), signed=True)} |")
    return "\n".join(lines) + "\n"


def _tex_escape(text: str) -> str:
    return re.sub(r"([&%$#_{}])", r"\\\1", text).replace("~", r"$\sim$").replace("–", "--").replace("±", r"$\pm$")


def render_latex(table: Table, std: bool = False) -> str:
    """A booktabs ``tabular`` with the same content as the markdown table."""
    k = len(table.noises)
    head = " & ".join(["Method", *(_tex_escape(NOISE_NAMES.get(z, z)) for z in table.noises), r"Mean $\Delta$"])
    lines = [f"% {_tex_escape(table.setting)}", f"% {_tex_escape(_caption(table, std))}",
             r"\begin{tabular}{l" + "c" * (k + 1) + "}", r"\toprule", head + r" \\", r"\midrule"]
    full = table.full or {}
    lines.append("Full-training & " + " & ".join(_cell_text(full.get(z), std, table.modal_n, True)
                                                 for z in table.noises) + r" & -- \\")
    for ratio, rows in table.groups:
        lines += [r"\midrule", rf"\multicolumn{{{k + 2}}}{{c}}{{{_tex_escape(_ratio_title(ratio))}}} \\", r"\midrule"]
        for method, cells in rows:
            delta = _mean_delta(cells)
            lines.append(_tex_escape(method_name(method)) + " & "
                         + " & ".join(_cell_text(cells[z], std, table.modal_n, True) for z in table.noises)
                         + " & " + (f"${_fmt(delta, signed=True)}$" if np.isfinite(delta) else "--") + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def load_paper_results(path: str | Path | None = None) -> pd.DataFrame:
    """The paper's reported cells (Tables 1, 2, B, C): table, dataset, ratio, method, noise, value, paper_delta,
    provenance. Cells the text extraction of the paper garbled are absent (see paper_results_NOTES.md)."""
    if path is None:
        text = resources.files("alignprune_exp.data_files").joinpath("paper_results.csv").read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    frame = pd.read_csv(io.StringIO(text), dtype={"ratio": str, "method": str, "noise": str, "table": str})
    frame["value"] = frame["value"].astype(float)
    frame["paper_delta"] = pd.to_numeric(frame["paper_delta"], errors="coerce")
    return frame


def paper_vs_measured(cells: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Every cell both the paper and the runs have (base methods only; CIFAR-N datasets), side by side.

    Columns: setting, table, provenance, ratio, method, noise, paper, measured, std, n, diff (measured - paper),
    paper_delta, measured_delta. Absolute accuracies differ at another scale; the gaps to Full are comparable.
    """
    base = cells[cells["variant"] == ""]
    index = {(r.dataset, r.ratio, r.method, r.noise): r for r in paper.itertuples()}
    out = []
    for r in base.itertuples():
        p = index.get((r.dataset, "r0" if r.is_full else r.ratio, r.method, r.noise))
        if p is None:
            continue
        out.append({"setting": r.setting, "table": p.table, "provenance": p.provenance,
                    "ratio": "r0" if r.is_full else r.ratio, "method": r.method, "noise": r.noise,
                    "paper": p.value, "measured": r.mean, "std": r.std, "n": r.n, "diff": r.mean - p.value,
                    "paper_delta": p.paper_delta, "measured_delta": r.delta})
    frame = pd.DataFrame(out, columns=["setting", "table", "provenance", "ratio", "method", "noise", "paper",
                                       "measured", "std", "n", "diff", "paper_delta", "measured_delta"])
    if len(frame):
        frame["_m"] = frame["method"].map(_method_key)
        frame["_z"] = frame["noise"].map(lambda z: NOISE_ORDER.index(z) if z in NOISE_ORDER else len(NOISE_ORDER))
        frame = frame.sort_values(["setting", "ratio", "_m", "_z"]).drop(columns=["_m", "_z"])
    return frame.reset_index(drop=True)


def render_paper_vs_measured(frame: pd.DataFrame) -> str:
    """Markdown: one table per setting of paper vs measured values and gaps to Full-training."""
    lines = ["# Paper vs measured", "",
             "Every cell both the paper (Tables 1, 2, B, C) and these runs have. diff = measured - paper; "
             "Δ = gap to Full-training. At another scale (profile=cpu) absolute accuracies are not comparable; "
             "the gaps and their signs are.", ""]
    if frame.empty:
        return "\n".join(lines + ["No cell in common.", ""])
    for setting, sub in frame.groupby("setting", sort=True):
        lines += [f"### {setting}", "",
                  "| Ratio | Method | Noise | Paper | Measured | diff | Paper Δ | Measured Δ | Source |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in sub.itertuples():
            measured = _fmt(r.measured) + (f" ± {_fmt(r.std)}" if np.isfinite(r.std) else "") + f" (n={r.n})"
            lines.append(f"| {r.ratio} | {method_name(r.method)} | {NOISE_NAMES.get(r.noise, r.noise)} | "
                         f"{_fmt(r.paper)} | {measured} | {_fmt(r.diff, True)} | {_fmt(r.paper_delta, True)} | "
                         f"{_fmt(r.measured_delta, True)} | {r.table} |")
        lines.append("")
    return "\n".join(lines)


def efficiency_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Table 3 layout per (setting, noise, ratio): accuracy, wall time and pruned fraction per method."""
    def column(name):
        return _num(rows[name]) if name in rows else np.full(len(rows), math.nan)

    data = rows.assign(acc=column("final_test_acc"), time=column("wall_time_s"), pruned=column("avg_pruned_fraction"))
    out = []
    for (setting, noise, ratio, method), g in data.groupby(["setting", "noise", "ratio", "method"], sort=True):
        out.append({"setting": setting, "noise": noise, "ratio": ratio, "method": method, "n": len(g),
                    "acc": float(np.nanmean(g["acc"])) if np.isfinite(g["acc"]).any() else math.nan,
                    "time_min": float(np.nanmean(g["time"])) / 60 if np.isfinite(g["time"]).any() else math.nan,
                    "pruned": float(np.nanmean(g["pruned"])) if np.isfinite(g["pruned"]).any() else math.nan})
    return pd.DataFrame(out, columns=["setting", "noise", "ratio", "method", "n", "acc", "time_min", "pruned"])


def render_efficiency(frame: pd.DataFrame) -> str:
    """Markdown blocks like the paper's Table 3: methods as columns, Full data (r0) last."""
    lines = ["# Efficiency (Table 3 layout)", "",
             "Mean over seeds of final test accuracy, wall time per run (minutes, this machine) and the average "
             "fraction of the training set pruned per epoch (Table F). Full data = pruner=full at ratio r0.", ""]
    for setting, sub in frame.groupby("setting", sort=True):
        full = sub[(sub["method"] == "full") & (sub["ratio"] == "r0")]
        for noise in _order(sub["noise"], NOISE_ORDER):
            for ratio in sorted(set(sub.loc[(sub["noise"] == noise) & (sub["ratio"] != "r0"), "ratio"])):
                cols = sub[(sub["noise"] == noise) & (sub["ratio"] == ratio)]
                cols = sorted(cols.itertuples(), key=lambda r: _method_key(r.method))
                fulls = [r for r in full.itertuples() if r.noise == noise]
                allc = [(method_name(r.method), r) for r in cols] + [("Full data", r) for r in fulls]
                lines += [f"### {setting} | {NOISE_NAMES.get(noise, noise)} | {_ratio_title(ratio)}", "",
                          "| | " + " | ".join(name for name, _ in allc) + " |", "|---|" + "---|" * len(allc),
                          "| Acc (%) | " + " | ".join(_fmt(r.acc) for _, r in allc) + " |",
                          "| Time (min) | " + " | ".join(_fmt(r.time_min) for _, r in allc) + " |",
                          "| Pruned per epoch (%) | " + " | ".join(_fmt(100 * r.pruned) for _, r in allc) + " |",
                          ""]
    return "\n".join(lines)


def _cells_csv(cells: pd.DataFrame) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    cols = ["setting", "dataset", "ratio", "method", "noise", "n", "mean", "std", "full_mean", "delta"]
    writer.writerow(cols)
    for r in cells.itertuples():
        writer.writerow([r.setting, r.dataset, r.ratio, r.method, r.noise, r.n,
                         *(("" if not np.isfinite(v) else f"{v:.4f}") for v in (r.mean, r.std, r.full_mean, r.delta))])
    return buf.getvalue()


def write_tables(results_dir: str | Path, out_dir: str | Path, metric: str = "final_test_acc", std: bool = False,
                 methods: list[str] | None = None, paper_path: str | Path | None = None) -> list[Path]:
    """Read the rows under ``results_dir`` and write tables.md, tables.tex, cells.csv, paper_vs_measured.md and
    efficiency.md into ``out_dir``; returns the paths written."""
    rows = load_runs(results_dir)
    cells = cell_stats(rows, metric)
    tables = build_tables(cells, metric, methods)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "tables.md": "# Results\n\n" + "\n".join(render_markdown(t, std) for t in tables),
        "tables.tex": "% Generated by scripts/make_tables.py; needs \\usepackage{booktabs}\n"
                      + "\n".join(render_latex(t, std) for t in tables),
        "cells.csv": _cells_csv(cells),
        "paper_vs_measured.md": render_paper_vs_measured(paper_vs_measured(cells, load_paper_results(paper_path))),
        "efficiency.md": render_efficiency(efficiency_rows(rows)),
    }
    written = []
    for name, text in files.items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


__all__ = ["load_runs", "cell_stats", "build_tables", "render_markdown", "render_latex", "load_paper_results",
           "paper_vs_measured", "render_paper_vs_measured", "efficiency_rows", "render_efficiency", "write_tables",
           "parse_overrides", "Table"]
