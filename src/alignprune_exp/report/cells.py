"""Results rows to table cells: the vocabulary of methods and noises, settings and variants, means over seeds.

One table per *setting*: the experiment name, dataset, model, epochs, training-set size and test split,
plus any overrides that apply to every method (``model.width=16``). Overrides of the method itself
(``pruner.*``, ``reference*``, ``loss*``) make a variant row, e.g. ``InfoBatch [pruner.policy.rescale=false]``,
so a variant is never averaged into its base method. Each cell is the mean over seeds of one metric with
its std, seed count and gap to Full-training (``pruner=full`` at ``ratio=r0``, same setting and noise).
The paper's own reported cells (``load_paper_results``) are matched to measured ones by ``paper_vs_measured``.
"""

from __future__ import annotations

import io
import math
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from alignprune_exp.report.read import load_results, report

METHOD_ORDER = [
    "full",
    "random_static",
    "smalll",
    "margin",
    "forgetting",
    "grand",
    "el2n",
    "moderate",
    "ssp",
    "prune4rel",
    "dyn_unc",
    "dual",
    "random_dynamic",
    "divbs",
    "ies",
    "infobatch",
    "infobatch_das",
    "infobatch_das_expanding",
    "infobatch_r1",
    "infobatch_das_r1",
    "infobatch_norescale",
    "infobatch_das_norescale",
    "seta",
    "seta_das",
]
METHOD_NAMES = {
    "full": "Full-training",
    "random_static": "Static Random",
    "smalll": "SmallL",
    "margin": "Margin",
    "forgetting": "Forget",
    "grand": "GraNd",
    "el2n": "EL2N",
    "moderate": "Moderate",
    "ssp": "SSP",
    "prune4rel": "Prune4ReL",
    "dyn_unc": "Dyn-Unc",
    "dual": "DUAL",
    "random_dynamic": "Dynamic Random",
    "divbs": "DivBS",
    "ies": "IES",
    "infobatch": "InfoBatch",
    "infobatch_das": "InfoBatch + Ours",
    "infobatch_das_expanding": "InfoBatch + Ours (expanding window)",
    "infobatch_r1": "InfoBatch (r = 1)",
    "infobatch_das_r1": "InfoBatch + Ours (r = 1)",
    "infobatch_norescale": "InfoBatch (no rescale)",
    "infobatch_das_norescale": "InfoBatch + Ours (no rescale)",
    "seta": "SeTa",
    "seta_das": "SeTa + Ours",
}
NOISE_ORDER = [
    "clean",
    "real",
    "real_aggre",
    "real_rand1",
    "real_rand2",
    "real_rand3",
    "real_worst",
    "sym0.2",
    "sym0.5",
    "sym0.8",
    "asym0.2",
    "asym0.4",
    "pairflip0.45",
]
NOISE_NAMES = {
    "clean": "Clean",
    "real": "Real",
    "real_aggre": "Real-A",
    "real_rand1": "Real-R1",
    "real_rand2": "Real-R2",
    "real_rand3": "Real-R3",
    "real_worst": "Real-W",
    "sym0.2": "Sym 0.2",
    "sym0.5": "Sym 0.5",
    "sym0.8": "Sym 0.8",
    "asym0.2": "Asym 0.2",
    "asym0.4": "Asym 0.4",
    "pairflip0.45": "Pairflip 0.45",
}
DATASET_NAMES = {"cifar100": "CIFAR-100N", "cifar10": "CIFAR-10N", "digits": "digits"}
METRIC_NAMES = {
    "final_test_acc": "Final test accuracy (%)",
    "best_test_acc": "Best test accuracy (%)",
    "wall_time_s": "Wall time (s)",
    "mean_score_noise_auroc": "Score noise AUROC (mean over epochs)",
    "mean_kept_noisy_fraction": "Noisy fraction among kept samples (mean over epochs)",
}

# Overrides that place a run in a cell (or only say where/how it ran) rather than change what it computes.
CELL_KEYS = {
    "dataset",
    "noise",
    "ratio",
    "seed",
    "pruner",
    "experiment",
    "profile",
    "data_dir",
    "results_dir",
    "resume",
    "checkpoint_every",
    "stop_grace_s",
    "results_file",
    "device",
    "progress_bar",
    "num_threads",
    "logger",
    "eval_every",
    "eval_batch_size",
    "snapshots",
    "checkpoint",
    "amp",
    "warmup.cache_dir",
    "model",
    "epochs",
    "train_subset",
    "test_split",
    "holdout_size",
    "experiment_name",
}
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
    rows, problems = load_results(results_dir)
    for col in (
        "experiment",
        "dataset",
        "model",
        "epochs",
        "n_train",
        "n_test",
        "test_split",
        "noise",
        "pruner",
        "ratio",
        "seed",
        "target_ratio",
        "overrides",
        "timestamp",
        "run_dir",
        "status",
    ):
        if col not in rows:
            rows[col] = ""
    unfinished = ~rows["status"].isin(["", "completed"])
    if unfinished.any():
        problems.append(
            f"{int(unfinished.sum())} row(s) of runs that did not complete (status "
            f"{', '.join(sorted(set(rows.loc[unfinished, 'status'])))}) left out"
        )
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
    parts = [
        f"{row['model']}",
        f"{row['epochs']} epochs",
        f"{row['n_train']} train",
        f"{row['test_split']} test {row['n_test']}",
    ]
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
        out.append(
            {
                **dict(zip(keys, key)),
                "target_ratio": float(target) if np.isfinite(target) else math.nan,
                "mean": float(np.mean(values)),
                "std": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
                "n": int(len(values)),
            }
        )
    cells = pd.DataFrame(out, columns=[*keys, "target_ratio", "mean", "std", "n"])
    is_full = (
        (cells["pruner"] == "full")
        & (cells["variant"] == "")
        & ((cells["ratio"] == "r0") | (cells["target_ratio"] == 0))
    )
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
        out.append(
            {
                "setting": r.setting,
                "table": p.table,
                "provenance": p.provenance,
                "ratio": "r0" if r.is_full else r.ratio,
                "method": r.method,
                "noise": r.noise,
                "paper": p.value,
                "measured": r.mean,
                "std": r.std,
                "n": r.n,
                "diff": r.mean - p.value,
                "paper_delta": p.paper_delta,
                "measured_delta": r.delta,
            }
        )
    frame = pd.DataFrame(
        out,
        columns=[
            "setting",
            "table",
            "provenance",
            "ratio",
            "method",
            "noise",
            "paper",
            "measured",
            "std",
            "n",
            "diff",
            "paper_delta",
            "measured_delta",
        ],
    )
    if len(frame):
        frame["_m"] = frame["method"].map(_method_key)
        frame["_z"] = frame["noise"].map(lambda z: NOISE_ORDER.index(z) if z in NOISE_ORDER else len(NOISE_ORDER))
        frame = frame.sort_values(["setting", "ratio", "_m", "_z"]).drop(columns=["_m", "_z"])
    return frame.reset_index(drop=True)


__all__ = [
    "load_runs",
    "setting_label",
    "cell_stats",
    "method_name",
    "parse_overrides",
    "load_paper_results",
    "paper_vs_measured",
    "METHOD_ORDER",
    "METHOD_NAMES",
    "NOISE_ORDER",
    "NOISE_NAMES",
    "DATASET_NAMES",
    "METRIC_NAMES",
]
