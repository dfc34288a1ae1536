"""The one training loop shared by every pruner: select, train with per-sample weights, score, evaluate."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import metrics
from ..data.augment import BatchAugment
from .schedule import LRSchedule
from .state import RunState

log = logging.getLogger(__name__)


@dataclass
class TrainData:
    """Tensors on the training device: uint8 images, noisy and clean labels, reference and test sets."""

    x: torch.Tensor
    y: torch.Tensor
    y_clean: torch.Tensor
    ref_x: torch.Tensor
    ref_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    augment: BatchAugment

    @property
    def num_samples(self) -> int:
        return len(self.y)

    @property
    def is_noisy(self) -> torch.Tensor:
        return self.y != self.y_clean


EpochCallback = Callable[[dict, dict], None]


class Trainer:
    """Spends the forward-pass budget epoch by epoch; knows no pruning method or scorer by name.

    Each epoch: the policy turns the scorer's scores into (indices, weights); the model trains on those
    indices with ``weights[i] * loss_i`` (per-sample losses from one ``reduction="none"`` call); the
    scorer observes the losses (and, if it needs one, the reference set's mean loss); then the test set
    is evaluated and one metrics record goes to every callback.
    """

    def __init__(self, state: RunState, data: TrainData, schedule: LRSchedule, *, device: torch.device,
                 batch_size: int, eval_batch_size: int = 1024, label_smoothing: float = 0.0,
                 amp: bool = False, eval_every: int = 1, max_epochs: int | None = None,
                 callbacks: Sequence[EpochCallback] = (), progress_bar: bool = False):
        self.state, self.data, self.schedule = state, data, schedule
        self.device, self.batch_size, self.eval_batch_size = device, batch_size, eval_batch_size
        self.label_smoothing, self.amp, self.eval_every = label_smoothing, amp, max(1, eval_every)
        self.max_epochs, self.callbacks, self.progress_bar = max_epochs, list(callbacks), progress_bar
        self.last_test = (float("nan"), float("nan"))

    def per_sample_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), targets, reduction="none", label_smoothing=self.label_smoothing)

    def autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        """Mean loss and accuracy (%) on un-augmented images, in eval mode."""
        model = self.state.model
        model.eval()
        loss_sum, correct = 0.0, 0
        for i in range(0, len(y), self.eval_batch_size):
            xb, yb = self.data.augment(x[i:i + self.eval_batch_size], train=False), y[i:i + self.eval_batch_size]
            with self.autocast():
                logits = model(xb)
            loss_sum += self.per_sample_loss(logits, yb).sum().item()
            correct += (logits.argmax(1) == yb).sum().item()
        return loss_sum / max(1, len(y)), 100.0 * correct / max(1, len(y))

    def batches(self, n: int) -> list[slice]:
        """Batch slices over n samples; a final batch of one sample joins the previous one (BatchNorm)."""
        starts = list(range(0, n, self.batch_size))
        if len(starts) > 1 and n - starts[-1] == 1:
            starts.pop()
        return [slice(s, e) for s, e in zip(starts, starts[1:] + [n])]

    def train_epoch(self, indices: torch.Tensor, weights: torch.Tensor, bar=None) -> tuple[torch.Tensor, float, float]:
        """One pass over ``indices`` (already shuffled and cut to the budget); returns their losses."""
        st, data = self.state, self.data
        st.model.train()
        losses = torch.empty(len(indices), device=self.device)
        weighted_sum = 0.0
        for sl in self.batches(len(indices)):
            b = indices[sl]
            self.schedule.apply(st.optimizer, st.budget.progress)
            x = data.augment(data.x[b], generator=st.augment_gen, train=True)
            with self.autocast():
                logits = st.model(x)
            loss_vec = self.per_sample_loss(logits, data.y[b])
            loss = (loss_vec * weights[b]).mean()
            st.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            st.optimizer.step()
            st.budget.spend(len(b))
            losses[sl] = loss_vec.detach()
            weighted_sum += loss.item() * len(b)
            if bar is not None:
                bar.update(len(b))
        return losses, weighted_sum / max(1, len(indices)), st.optimizer.param_groups[0]["lr"]

    def run_epoch(self, bar=None) -> dict:
        """Select, train, score and evaluate one epoch; returns its metrics record."""
        st, data = self.state, self.data
        epoch, t0 = st.epoch, time.perf_counter()
        scores = st.scorer.scores()
        indices, weights = st.policy.select(scores, epoch, progress=st.budget.progress)
        selected = len(indices)
        perm = torch.randperm(selected, generator=st.shuffle_gen).to(indices.device)
        indices = indices[perm][: st.budget.grant(selected)].to(self.device)
        weights = weights.to(self.device)
        losses, weighted_loss, lr = self.train_epoch(indices, weights, bar)
        st.scorer.observe(indices, losses, epoch)
        train_s = time.perf_counter() - t0
        rec: dict = {}
        if getattr(st.scorer, "needs_reference", False):
            ref_loss, ref_acc = self.evaluate(data.ref_x, data.ref_y)
            st.scorer.observe_reference(epoch, ref_loss)
            st.reference_fwd += len(data.ref_y)
            rec.update({"ref/loss": ref_loss, "ref/acc": ref_acc})
        done = st.budget.exhausted or (self.max_epochs is not None and epoch + 1 >= self.max_epochs)
        if (epoch + 1) % self.eval_every == 0 or done:
            self.last_test = self.evaluate(data.test_x, data.test_y)
        is_noisy = data.is_noisy
        last_loss, observed = st.scorer.last_losses()
        st.pruned_fractions.append(1.0 - selected / data.num_samples)
        rec.update({
            "epoch": epoch, "progress": st.budget.progress, "lr": lr,
            "train/loss": losses.mean().item() if len(losses) else float("nan"),
            "train/weighted_loss": weighted_loss,
            "test/loss": self.last_test[0], "test/acc": self.last_test[1],
            "prune/selected_fraction": selected / data.num_samples,
            "prune/kept_fraction": len(indices) / data.num_samples,
            "prune/kept_noisy_fraction": metrics.kept_noisy_fraction(indices, is_noisy),
            "prune/weighted_noisy_share": metrics.weighted_noisy_share(indices, weights, is_noisy),
            "score/noise_auroc": metrics.noise_auroc(scores, is_noisy),
            "loss/noise_auroc": metrics.loss_noise_auroc(last_loss, is_noisy, mask=observed),
            "fwd/train": st.budget.spent, "fwd/reference": st.reference_fwd,
            "time/train_s": train_s, "time/epoch_s": time.perf_counter() - t0,
        })
        stats = getattr(st.policy, "stats", None)
        if stats:
            rec["prune/annealing"] = bool(stats.get("annealing", False))
        st.epoch += 1
        for cb in self.callbacks:
            cb(rec, {"scores": scores, "is_noisy": is_noisy, "last_loss": last_loss})
        return rec

    def fit(self) -> dict:
        """Train until the budget is spent; returns the run's summary figures."""
        st, t0 = self.state, time.perf_counter()
        history: list[dict] = []
        with tqdm(total=st.budget.total, initial=st.budget.spent, unit="fwd", unit_scale=True,
                  disable=not self.progress_bar, mininterval=1.0, leave=False) as bar:
            while not st.budget.exhausted:
                if self.max_epochs is not None and st.epoch >= self.max_epochs:
                    log.warning("stopped at the epoch limit (%d) with %.1f%% of the budget unspent",
                                self.max_epochs, 100 * (1 - st.budget.progress))
                    break
                rec = self.run_epoch(bar)
                history.append(rec)
                bar.set_postfix(epoch=rec["epoch"], acc=f"{rec['test/acc']:.1f}")
                log.info("epoch %3d | kept %.3f | noisy kept %.3f | loss %.4f | test acc %.2f | "
                         "score AUROC %.3f | %.1fs", rec["epoch"], rec["prune/kept_fraction"],
                         rec["prune/kept_noisy_fraction"], rec["train/loss"], rec["test/acc"],
                         rec["score/noise_auroc"], rec["time/epoch_s"])
        accs = [r["test/acc"] for r in history if not math.isnan(r["test/acc"])]
        pruning = [r["score/noise_auroc"] for r in history
                   if not r.get("prune/annealing", False) and not math.isnan(r["score/noise_auroc"])]
        return {
            "epochs_run": st.epoch,
            "final_test_acc": self.last_test[1],
            "best_test_acc": max(accs) if accs else float("nan"),
            "achieved_ratio": st.budget.achieved_ratio,
            "budget_spent_fraction": st.budget.progress,
            "train_fwd": st.budget.spent, "reference_fwd": st.reference_fwd, "full_fwd": st.budget.full,
            "avg_pruned_fraction": (sum(st.pruned_fractions) / len(st.pruned_fractions)
                                    if st.pruned_fractions else 0.0),
            "final_score_noise_auroc": history[-1]["score/noise_auroc"] if history else float("nan"),
            "mean_score_noise_auroc": sum(pruning) / len(pruning) if pruning else float("nan"),
            "final_loss_noise_auroc": history[-1]["loss/noise_auroc"] if history else float("nan"),
            "mean_kept_noisy_fraction": (sum(r["prune/kept_noisy_fraction"] for r in history) / len(history)
                                         if history else float("nan")),
            "wall_time_s": time.perf_counter() - t0,
        }
