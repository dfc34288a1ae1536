#!/usr/bin/env python
"""How close DAS rankings stay when the reference mean is taken over K reference images instead of all of
them (``reference.eval_size=K``), and what each K costs, measured on one real run.

One training run (the config given, by default CIFAR-10N Real-W at the CPU profile with AlignPrune on
InfoBatch) is trained with the whole reference set, as the paper defines DAS. After every epoch, with the
model as it is then, this script reads the per-sample loss of every reference image and, for each K, forms
the reference mean over the fixed random K-subset that ``reference.eval_size=K`` would use (split_seed; also
``--subsets`` - 1 other subsets, for the spread). From the run's own memory bank it then computes the DAS
scores with each K-trajectory and compares them with the run's scores (whole set):

* Spearman correlation of the scores (all training samples);
* overlap of the pruned sets (Jaccard index |A & B| / |A | B|): InfoBatch's prunable set (scores below the
  mean, of which it drops a random r; the random draw itself is not compared, as one sample more or less
  in the set reshuffles it) and the 30% lowest scores (a ranking-based pruner at ratio 0.3);
* overhead per epoch: the reference pass over K images (median of timings each epoch) plus the bank update
  and correlation, as a share of the epoch's training time (``time/train_s``).

Agreement is reported over the epochs where the policy prunes by score (DAS has >= 3 observations and
InfoBatch is not annealing). Rankings here are compared on one trajectory (the whole-set run's); a run with
eval_size=K would drift from it through its own selections.

    python scripts/bench_reference.py --data-dir ../shared/data
    python scripts/bench_reference.py --data-dir ../shared/data --ks 100 250 500 -- epochs=20
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from hydra import compose, initialize_config_dir  # noqa: E402

from alignprune_exp.pipeline.build import build_trainer  # noqa: E402
from alignprune_exp.reference.selectors import CleanValReference  # noqa: E402
from alignprune_exp.scoring.das import das_scores  # noqa: E402

DEFAULT = [
    "profile=cpu",
    "dataset=cifar10",
    "noise=real_worst",
    "pruner=infobatch_das",
    "ratio=r30",
    "snapshots=false",
    "num_threads=1",
]


class Probe:
    """Epoch callback: reference losses per image, DAS scores per K, agreement and timings."""

    def __init__(self, trainer, ks: list[int], subsets: int, split_seed: int, time_every: int):
        self.trainer, self.time_every = trainer, time_every
        self.prune_fraction = 0.3
        data = trainer.data
        self.ref_x, self.ref_y = data.ref_x, data.ref_y
        n_ref = len(self.ref_y)
        self.subsets = {
            k: [CleanValReference(eval_size=k).eval_rows(n_ref, split_seed + s) for s in range(subsets)]
            for k in ks
            if k < n_ref
        }
        self.ref_hist = {(k, s): [] for k, rows in self.subsets.items() for s in range(len(rows))}
        self.rows: list[dict] = []
        self.ref_time = {k: [] for k in [*self.subsets, n_ref]}
        self.bank_time, self.train_time = [], []

    @torch.no_grad()
    def ref_losses(self) -> torch.Tensor:
        t = self.trainer
        t.state.model.eval()
        out = []
        bs = t.reference_batch_size or t.eval_batch_size
        for i in range(0, len(self.ref_y), bs):
            x = t.data.augment(self.ref_x[i : i + bs], train=False)
            with t.autocast():
                out.append(t.criterion.per_sample(t.forward(x), self.ref_y[i : i + bs]))
        return torch.cat(out)

    def time_reference(self, rows) -> float:
        data = self.trainer.data
        data.ref_x, data.ref_y = self.ref_x[rows], self.ref_y[rows]
        t0 = time.perf_counter()
        self.trainer.evaluate("reference")
        elapsed = time.perf_counter() - t0
        data.ref_x, data.ref_y = self.ref_x, self.ref_y
        return elapsed

    def __call__(self, rec: dict, extras: dict) -> None:
        st = self.trainer.state
        scorer, epoch = st.scorer, rec["epoch"]
        per_image = self.ref_losses()
        for k, rows in self.subsets.items():
            for s, r in enumerate(rows):
                self.ref_hist[(k, s)].append(per_image[torch.as_tensor(r)].mean().item())
        self.train_time.append(rec["time/train_s"])
        if epoch % self.time_every == 0:
            self.ref_time[len(self.ref_y)].append(self.time_reference(slice(None)))
            for k, rows in self.subsets.items():
                self.ref_time[k].append(self.time_reference(torch.as_tensor(rows[0])))
        # Bank update + correlation, timed on a copy (the run's scorer is left as it is).
        twin = copy.deepcopy(scorer)
        t0 = time.perf_counter()
        twin.observe(extras["trained"], extras["losses"], epoch)
        twin.scores()
        self.bank_time.append(time.perf_counter() - t0)

        whole = scorer.scores()
        losses, epochs = scorer.trajectories()
        observed = epochs >= 0
        at = epochs.clamp(min=0)
        row = {"epoch": epoch}
        annealing = bool(getattr(st.policy, "stats", {}).get("annealing", False))
        if epoch < 2 or annealing:
            return
        cut = int(self.prune_fraction * len(whole))
        low_whole = whole < whole.mean()
        bottom_whole = torch.zeros_like(low_whole)
        bottom_whole[whole.argsort(stable=True)[:cut]] = True
        for (k, s), hist in self.ref_hist.items():
            ref = torch.tensor(hist, dtype=torch.float32, device=whole.device)
            scores_k = das_scores(losses, ref[at], observed, scorer.rho, scorer.min_observations)
            rho = spearmanr(whole.cpu().numpy(), scores_k.cpu().numpy()).statistic
            low_k = scores_k < scores_k.mean()
            bottom_k = torch.zeros_like(low_k)
            bottom_k[scores_k.argsort(stable=True)[:cut]] = True
            row[(k, s)] = (float(rho), jaccard(low_k, low_whole), jaccard(bottom_k, bottom_whole))
        self.rows.append(row)


def jaccard(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a & b).sum().item() / max(1, (a | b).sum().item())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir",
        default=str(ROOT.parent / "shared" / "data"),
        help="folder with cifar10/ (npy) and cifar-n/ (default ../shared/data)",
    )
    parser.add_argument("--ks", type=int, nargs="+", default=[100, 250, 500], help="reference.eval_size values")
    parser.add_argument("--subsets", type=int, default=5, help="random K-subsets per K (split_seed, +1, ...)")
    parser.add_argument("--time-every", type=int, default=4, help="time the reference passes every k epochs")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides (after --)")
    args = parser.parse_args(argv)
    if not (Path(args.data_dir) / "cifar10").is_dir():
        print(
            f"error: {args.data_dir}/cifar10 not found; pass --data-dir with the cifar10/ and cifar-n/ folders",
            file=sys.stderr,
        )
        return 2
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[*DEFAULT, f"data_dir={args.data_dir}", "results_dir=/tmp/bench_reference", *args.overrides],
        )
    trainer, info = build_trainer(cfg)
    probe = Probe(trainer, args.ks, args.subsets, int(cfg.split_seed), args.time_every)
    trainer.callbacks.append(probe)
    t0 = time.perf_counter()
    summary = trainer.fit()
    print(
        f"run: {info['dataset_source']} noise={cfg.noise.get('label_set', 'real_worst')}, {info['n_train']} train "
        f"({100 * info['noise_rate']:.1f}% noisy), {info['n_reference']} reference, model {cfg.model.name}, "
        f"{summary['epochs_run']} epochs, final test acc {summary['final_test_acc']:.2f}% "
        f"({time.perf_counter() - t0:.0f} s, {torch.get_num_threads()} thread(s))"
    )
    n_ref = info["n_reference"]
    train_s = statistics.median(probe.train_time)
    bank_s = statistics.median(probe.bank_time)
    print(
        f"epochs compared: {len(probe.rows)} (DAS >= 3 observations, InfoBatch not annealing); median training "
        f"epoch {train_s:.2f} s; bank update + correlation {1e3 * bank_s:.1f} ms"
    )
    print(
        f"{'K':>6} {'Spearman med (min)':>20} {'InfoBatch set J med (min)':>26} {'lowest-30% J med (min)':>23} "
        f"{'ref pass ms':>12} {'overhead %':>11}"
    )
    for k in [*probe.subsets, n_ref]:
        ref_s = statistics.median(probe.ref_time[k])
        overhead = 100 * (ref_s + bank_s) / train_s
        if k == n_ref:
            print(
                f"{k:>6} {'1 (itself)':>20} {'1 (itself)':>26} {'1 (itself)':>23} {1e3 * ref_s:>12.1f} "
                f"{overhead:>11.2f}"
            )
            continue
        rho = [r[(k, s)][0] for r in probe.rows for s in range(args.subsets)]
        ovl = [r[(k, s)][1] for r in probe.rows for s in range(args.subsets)]
        jac = [r[(k, s)][2] for r in probe.rows for s in range(args.subsets)]
        first = [r[(k, 0)][0] for r in probe.rows]
        print(
            f"{k:>6} {statistics.median(rho):>11.4f} ({min(rho):.4f}) {statistics.median(ovl):>17.4f} "
            f"({min(ovl):.4f}) {statistics.median(jac):>14.4f} ({min(jac):.4f}) {1e3 * ref_s:>12.1f} "
            f"{overhead:>11.2f}"
            f"   [split_seed subset alone: Spearman median {statistics.median(first):.4f}]"
        )
    print(
        "median (min) over every compared epoch and K-subset; J = Jaccard index with the whole-set run's set; "
        "overhead % = (reference pass over K + bank update + correlation) / training epoch"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
