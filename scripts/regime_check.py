"""Whether a Full-training run memorises its noisy labels: the acceptance figures of a CPU regime profile.

``python scripts/regime_check.py RUN_DIR [...]`` prints, per run folder, best and final test accuracy, the loss
AUROC (noisy vs clean, by last loss) at its peak and at the end, and the noisy and clean samples' mean loss at
the end; a run is in the memorisation regime when best - final >= 3 points, the final loss AUROC is below
0.65 after a higher peak, and the noisy-minus-clean loss gap has closed to under a third of its peak.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

BEST_MINUS_FINAL, AUROC_BELOW, GAP_SHARE = 3.0, 0.65, 1 / 3


def regime(run_dir: Path) -> dict:
    """The acceptance figures of one run folder's ``metrics.jsonl``."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    nan = float("nan")  # the records write NaN as null
    recs = [{k: nan if v is None else v for k, v in json.loads(line).items()} for line in lines if line.strip()]
    acc = [(r["epoch"], r["test/acc"]) for r in recs if not math.isnan(r["test/acc"])]
    auroc = [(r["epoch"], r["loss/noise_auroc"]) for r in recs if not math.isnan(r["loss/noise_auroc"])]
    gap = [g for r in recs if not math.isnan(g := r["loss/mean_noisy"] - r["loss/mean_clean"])]
    best_epoch, best = max(acc, key=lambda t: t[1])
    peak_epoch, peak = max(auroc, key=lambda t: t[1])
    out = {
        "run_dir": str(run_dir),
        "epochs": len(recs),
        "best_acc": best,
        "best_epoch": best_epoch,
        "final_acc": acc[-1][1],
        "auroc_peak": peak,
        "auroc_peak_epoch": peak_epoch,
        "auroc_final": auroc[-1][1],
        "gap_peak": max(gap),
        "gap_final": gap[-1],
        "noisy_loss_final": recs[-1]["loss/mean_noisy"],
        "clean_loss_final": recs[-1]["loss/mean_clean"],
    }
    out["memorises"] = (
        best - out["final_acc"] >= BEST_MINUS_FINAL
        and out["auroc_final"] < AUROC_BELOW < peak
        and out["gap_final"] < GAP_SHARE * out["gap_peak"]
    )
    return out


def plot_curves(run_dirs: list[Path], labels: list[str], out: Path) -> None:
    """Test accuracy, loss AUROC and the noisy / clean mean loss per epoch, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for run_dir, label in zip(run_dirs, labels, strict=True):
        recs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
        ep = [r["epoch"] for r in recs]
        acc = [(r["epoch"], r["test/acc"]) for r in recs if r["test/acc"] is not None]
        (line,) = axes[0].plot(*zip(*acc), label=label)
        axes[1].plot(ep, [r["loss/noise_auroc"] for r in recs], color=line.get_color())
        axes[2].plot(ep, [r["loss/mean_noisy"] for r in recs], color=line.get_color())
        axes[2].plot(ep, [r["loss/mean_clean"] for r in recs], color=line.get_color(), linestyle="--")
    for ax, title in zip(
        axes, ("test accuracy (%)", "loss AUROC (noisy vs clean)", "mean loss: noisy -, clean --"), strict=True
    ):
        ax.set_title(title)
        ax.set_xlabel("epoch")
    axes[1].axhline(AUROC_BELOW, color="grey", linewidth=0.8)
    fig.legend(loc="upper center", ncol=min(len(labels), 4), bbox_to_anchor=(0.5, 1.08), frameon=False)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight", metadata={"Software": None})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("--plot", type=Path, help="also draw each run's curves (test acc, loss AUROC, mean losses)")
    parser.add_argument("--labels", nargs="*", help="one legend label per run folder (default: the folder)")
    args = parser.parse_args()
    if args.plot:
        plot_curves(args.run_dirs, args.labels or [str(d) for d in args.run_dirs], args.plot)
    for run_dir in args.run_dirs:
        r = regime(run_dir)
        print(
            f"{r['run_dir']}: {r['epochs']} epochs | test acc best {r['best_acc']:.2f} (epoch {r['best_epoch']}) "
            f"final {r['final_acc']:.2f} (drop {r['best_acc'] - r['final_acc']:.2f}) | loss AUROC peak "
            f"{r['auroc_peak']:.3f} (epoch {r['auroc_peak_epoch']}) final {r['auroc_final']:.3f} | mean loss "
            f"noisy {r['noisy_loss_final']:.3f} clean {r['clean_loss_final']:.3f} (gap {r['gap_final']:.3f}, "
            f"peak {r['gap_peak']:.3f}) | memorises: {r['memorises']}"
        )


if __name__ == "__main__":
    main()
