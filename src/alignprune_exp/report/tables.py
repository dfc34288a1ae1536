"""Paper-style result tables from the cells of ``report.cells`` (paper Tables 1, 2, B, C and 3).

Rows are pruning methods grouped by pruning ratio, columns are noise types; each cell is the mean over
seeds of one metric (final test accuracy by default, as the paper reports), optionally with its std, and
its gap to Full-training (``pruner=full`` at ``ratio=r0``, same setting and noise). Missing cells stay
missing ("–"): nothing is ever filled in from another cell. Output is deterministic: the same rows give
the same bytes, whatever their order in the files. Rendered as markdown and LaTeX, with the paper-vs-measured
and Table 3 (efficiency) pages, by ``write_tables``.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from alignprune_exp.report.cells import (
    METRIC_NAMES,
    NOISE_NAMES,
    NOISE_ORDER,
    _method_key,
    _num,
    _order,
    cell_stats,
    load_paper_results,
    load_runs,
    method_name,
    paper_vs_measured,
)
from alignprune_exp.report.paired import render_metrics, render_paired

MISSING = "–"


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
        table = Table(
            setting=setting,
            metric=metric,
            noises=noises,
            full=full,
            modal_n=int(pd.Series(sub["n"]).mode().max()) if len(sub) else 0,
        )
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
    return (
        f"{what}, mean{' ± std' if std else ''} over seeds (n = {table.modal_n} per cell unless marked [n=k]); "
        f"(±x) = gap to Full-training (full data, ratio r0); Mean Δ = mean gap over the noise columns, "
        f"only when every column has one; {MISSING} = missing (not run yet)."
    )


def render_markdown(table: Table, std: bool = False) -> str:
    """A GitHub-markdown table with its setting as heading and a one-line caption."""
    cols = ["Method", *(NOISE_NAMES.get(z, z) for z in table.noises), "Mean Δ"]
    lines = [
        f"### {table.setting}",
        "",
        _caption(table, std),
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    full = table.full or {}
    lines.append(
        "| Full-training | "
        + " | ".join(_cell_text(full.get(z), std, table.modal_n, False) for z in table.noises)
        + f" | {MISSING} |"
    )
    for ratio, rows in table.groups:
        lines.append(f"| **{_ratio_title(ratio)}** |" + " |" * len(table.noises) + " |")
        for method, cells in rows:
            lines.append(
                f"| {method_name(method)} | "
                + " | ".join(_cell_text(cells[z], std, table.modal_n, False) for z in table.noises)
                + f" | {_fmt(_mean_delta(cells), signed=True)} |"
            )
    return "\n".join(lines) + "\n"


def _tex_escape(text: str) -> str:
    return re.sub(r"([&%$#_{}])", r"\\\1", text).replace("~", r"$\sim$").replace("–", "--").replace("±", r"$\pm$")


def render_latex(table: Table, std: bool = False) -> str:
    """A booktabs ``tabular`` with the same content as the markdown table."""
    k = len(table.noises)
    head = " & ".join(["Method", *(_tex_escape(NOISE_NAMES.get(z, z)) for z in table.noises), r"Mean $\Delta$"])
    lines = [
        f"% {_tex_escape(table.setting)}",
        f"% {_tex_escape(_caption(table, std))}",
        r"\begin{tabular}{l" + "c" * (k + 1) + "}",
        r"\toprule",
        head + r" \\",
        r"\midrule",
    ]
    full = table.full or {}
    lines.append(
        "Full-training & "
        + " & ".join(_cell_text(full.get(z), std, table.modal_n, True) for z in table.noises)
        + r" & -- \\"
    )
    for ratio, rows in table.groups:
        lines += [r"\midrule", rf"\multicolumn{{{k + 2}}}{{c}}{{{_tex_escape(_ratio_title(ratio))}}} \\", r"\midrule"]
        for method, cells in rows:
            delta = _mean_delta(cells)
            lines.append(
                _tex_escape(method_name(method))
                + " & "
                + " & ".join(_cell_text(cells[z], std, table.modal_n, True) for z in table.noises)
                + " & "
                + (f"${_fmt(delta, signed=True)}$" if np.isfinite(delta) else "--")
                + r" \\"
            )
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def render_paper_vs_measured(frame: pd.DataFrame) -> str:
    """Markdown: one table per setting of paper vs measured values and gaps to Full-training."""
    lines = [
        "# Paper vs measured",
        "",
        "Every cell both the paper (Tables 1, 2, B, C) and these runs have. diff = measured - paper; "
        "Δ = gap to Full-training. At another scale (profile=cpu) absolute accuracies are not comparable; "
        "the gaps and their signs are.",
        "",
    ]
    if frame.empty:
        return "\n".join(lines + ["No cell in common.", ""])
    for setting, sub in frame.groupby("setting", sort=True):
        lines += [
            f"### {setting}",
            "",
            "| Ratio | Method | Noise | Paper | Measured | diff | Paper Δ | Measured Δ | Source |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in sub.itertuples():
            measured = _fmt(r.measured) + (f" ± {_fmt(r.std)}" if np.isfinite(r.std) else "") + f" (n={r.n})"
            lines.append(
                f"| {r.ratio} | {method_name(r.method)} | {NOISE_NAMES.get(r.noise, r.noise)} | "
                f"{_fmt(r.paper)} | {measured} | {_fmt(r.diff, True)} | {_fmt(r.paper_delta, True)} | "
                f"{_fmt(r.measured_delta, True)} | {r.table} |"
            )
        lines.append("")
    return "\n".join(lines)


def efficiency_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Table 3 layout per (setting, noise, ratio): accuracy, wall time and pruned fraction per method."""

    def column(name):
        return _num(rows[name]) if name in rows else np.full(len(rows), math.nan)

    # The policy's pruned fraction; rows written before the rename carry the same figure as avg_pruned_fraction.
    pruned = pd.Series(column("avg_policy_pruned_fraction"), index=rows.index)
    pruned = pruned.fillna(pd.Series(column("avg_pruned_fraction"), index=rows.index))
    data = rows.assign(acc=column("final_test_acc"), time=column("wall_time_s"), pruned=pruned)
    out = []
    for (setting, noise, ratio, method), g in data.groupby(["setting", "noise", "ratio", "method"], sort=True):
        out.append(
            {
                "setting": setting,
                "noise": noise,
                "ratio": ratio,
                "method": method,
                "n": len(g),
                "acc": float(np.nanmean(g["acc"])) if np.isfinite(g["acc"]).any() else math.nan,
                "time_min": float(np.nanmean(g["time"])) / 60 if np.isfinite(g["time"]).any() else math.nan,
                "pruned": float(np.nanmean(g["pruned"])) if np.isfinite(g["pruned"]).any() else math.nan,
            }
        )
    return pd.DataFrame(out, columns=["setting", "noise", "ratio", "method", "n", "acc", "time_min", "pruned"])


def render_efficiency(frame: pd.DataFrame) -> str:
    """Markdown blocks like the paper's Table 3: methods as columns, Full data (r0) last."""
    lines = [
        "# Efficiency (Table 3 layout)",
        "",
        "Mean over seeds of final test accuracy, wall time per run (minutes, this machine) and the average "
        "fraction of the training set pruned per epoch (Table F). Full data = pruner=full at ratio r0.",
        "",
    ]
    for setting, sub in frame.groupby("setting", sort=True):
        full = sub[(sub["method"] == "full") & (sub["ratio"] == "r0")]
        for noise in _order(sub["noise"], NOISE_ORDER):
            for ratio in sorted(set(sub.loc[(sub["noise"] == noise) & (sub["ratio"] != "r0"), "ratio"])):
                cols = sub[(sub["noise"] == noise) & (sub["ratio"] == ratio)]
                cols = sorted(cols.itertuples(), key=lambda r: _method_key(r.method))
                fulls = [r for r in full.itertuples() if r.noise == noise]
                allc = [(method_name(r.method), r) for r in cols] + [("Full data", r) for r in fulls]
                lines += [
                    f"### {setting} | {NOISE_NAMES.get(noise, noise)} | {_ratio_title(ratio)}",
                    "",
                    "| | " + " | ".join(name for name, _ in allc) + " |",
                    "|---|" + "---|" * len(allc),
                    "| Acc (%) | " + " | ".join(_fmt(r.acc) for _, r in allc) + " |",
                    "| Time (min) | " + " | ".join(_fmt(r.time_min) for _, r in allc) + " |",
                    "| Pruned per epoch (%) | " + " | ".join(_fmt(100 * r.pruned) for _, r in allc) + " |",
                    "",
                ]
    return "\n".join(lines)


def _cells_csv(cells: pd.DataFrame) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    cols = ["setting", "dataset", "ratio", "method", "noise", "n", "mean", "std", "full_mean", "delta"]
    writer.writerow(cols)
    for r in cells.itertuples():
        writer.writerow(
            [
                r.setting,
                r.dataset,
                r.ratio,
                r.method,
                r.noise,
                r.n,
                *(("" if not np.isfinite(v) else f"{v:.4f}") for v in (r.mean, r.std, r.full_mean, r.delta)),
            ]
        )
    return buf.getvalue()


def write_tables(
    results_dir: str | Path,
    out_dir: str | Path,
    metric: str = "final_test_acc",
    std: bool = False,
    methods: list[str] | None = None,
    paper_path: str | Path | None = None,
) -> list[Path]:
    """Read the rows under ``results_dir`` and write tables.md, tables.tex, cells.csv, paper_vs_measured.md,
    efficiency.md, paired.md (DAS - loss per seed) and metrics.md (per-cell means) into ``out_dir``; returns the
    paths written."""
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
        "paired.md": render_paired(rows),
        "metrics.md": render_metrics(rows),
    }
    written = []
    for name, text in files.items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


__all__ = [
    "build_tables",
    "render_markdown",
    "render_latex",
    "render_paper_vs_measured",
    "efficiency_rows",
    "render_efficiency",
    "write_tables",
    "Table",
    "MISSING",
]
