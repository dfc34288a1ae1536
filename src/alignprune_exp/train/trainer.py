"""The one training loop shared by every pruner: select, train with per-sample weights, score, evaluate."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm

from alignprune_exp.core import distributed
from alignprune_exp.core.errors import TrainingDiverged
from alignprune_exp.losses.base import Criterion
from alignprune_exp.losses.cross_entropy import CrossEntropy
from alignprune_exp.models.builders import features_and_logits
from alignprune_exp.plugin.engine import PruningEngine
from alignprune_exp.plugin.plan import EpochPlan, batch_bounds
from alignprune_exp.train import metrics
from alignprune_exp.train.schedule import LRSchedule
from alignprune_exp.train.speed import model_forward
from alignprune_exp.train.state import RunState
from alignprune_exp.train.summary import summarize

log = logging.getLogger(__name__)

EpochCallback = Callable[[dict, dict], None]
BatchCallback = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], None]


class Trainer:
    """Spends the forward-pass budget epoch by epoch; knows no pruning method or scorer by name.

    The epoch protocol is the plug-in's (``plugin.engine.PruningEngine``, one implementation for both): the
    engine's plan turns the scorer's scores into (indices, weights), shuffled and cut to the budget; the model
    trains on those indices with ``weights[i] * loss_i`` (``engine.update`` over the per-sample losses of the
    criterion's ``reduction="none"`` call); ``engine.end_epoch`` gathers the trained pairs and feeds the scorer
    the losses (and, if it needs one, the reference set's mean loss, evaluated here); the
    test set is evaluated and one metrics record goes to every epoch callback. Batch callbacks see
    ``(epoch, indices, logits, targets)`` of every trained batch (forgetting events, probability
    histories). A policy that ``selects_in_batch`` (batch-level selection such as DivBS) picks, inside
    each drawn batch of its ``draw_batch_size``, the samples that train, from a no-grad forward of
    features and logits. Capabilities are read as declared attributes of the contracts (``Policy``,
    ``Scorer``, ``Criterion``), never probed.

    With several ranks (``dist``, see ``distributed.py``) every rank selects and shuffles identically,
    trains its part of each global batch of ``batch_size`` through DistributedDataParallel, and receives
    every trained sample's (index, loss) pair after the epoch, so scorer banks stay identical.
    """

    def __init__(
        self,
        state: RunState,
        data,
        schedule: LRSchedule,
        *,
        device: torch.device,
        batch_size: int,
        eval_batch_size: int = 1024,
        criterion: Criterion | None = None,
        amp: bool = False,
        eval_every: int = 1,
        max_epochs: int | None = None,
        callbacks: Sequence[EpochCallback] = (),
        batch_callbacks: Sequence[BatchCallback] = (),
        progress_bar: bool = False,
        reference_batch_size: int | None = None,
        memory_format=torch.contiguous_format,
        forward=None,
        dist: distributed.Dist | None = None,
        check_ranks: bool = False,
        divergence_threshold: float = math.inf,
    ):
        self.state, self.data, self.schedule = state, data, schedule
        # Speed settings (train/speed.py): the reference pass's batch (None = eval_batch_size; halved on CUDA
        # out-of-memory), NHWC inputs for channels-last models, and a (compiled) callable to run the model.
        self.reference_batch_size, self.memory_format = reference_batch_size, memory_format
        self._forward = forward
        self.device, self.batch_size, self.eval_batch_size = device, batch_size, eval_batch_size
        self.criterion: Criterion = criterion if criterion is not None else CrossEntropy()
        self.amp, self.eval_every = amp, max(1, eval_every)
        self.max_epochs, self.progress_bar, self.max_loss = max_epochs, progress_bar, divergence_threshold
        self.callbacks, self.batch_callbacks = list(callbacks), list(batch_callbacks)
        self.last_test = (float("nan"), float("nan"))
        self.history: list[dict] = []  # epoch records so far (restored with a checkpoint)
        self.epoch_end_hooks: list[Callable[[list[dict]], None]] = []  # after each record: checkpoints, stops
        self.dist = distributed.current() if dist is None else dist
        distributed.check_global_batch(batch_size, self.dist)
        self.net = self.dist.wrap(state.model, device)  # the module that trains (DDP over state.model)
        if forward is not None and self.net is not state.model:  # compile the DDP module: gradients still sync
            self._forward = model_forward(self.net, True)
        self.check_ranks = check_ranks
        # The epoch protocol; it shares the run state's scorer, policy, budget and shuffle generator, which the
        # checkpoints save (epochs end at boundaries, so the engine's open plan is never part of one).
        self.engine = PruningEngine(
            state.scorer, state.policy, state.budget, shuffle_gen=state.shuffle_gen, device=device, in_trainer=True
        )
        # What data sources get as ``dist=``: the Dist, so each yields only this rank's part; None on one process.
        self._rank_split = self.dist if self.dist.active else None

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=self.memory_format) if x.dim() == 4 else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The model's logits for ``x`` (through the compiled model when ``compile=true``)."""
        return (self._forward or self.net)(self._input(x))

    def eval_forward(self, x: torch.Tensor) -> torch.Tensor:
        """No-grad logits outside DistributedDataParallel (ranks evaluate unequal shares: no collective here)."""
        if not self.dist.active:
            return self.forward(x)
        return self.state.model(self._input(x))

    def autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    @torch.no_grad()
    def evaluate(self, split: str) -> tuple[float, float]:
        """Mean loss and accuracy (%) on the un-augmented ``reference`` or ``test`` split, in eval mode.

        Sums stay on the device until the end (one synchronisation per call); the reference pass uses
        ``reference_batch_size``, halved and retried when CUDA runs out of memory.
        """
        size = (self.reference_batch_size if split == "reference" else None) or self.eval_batch_size
        while True:
            try:
                return self._evaluate(split, size)
            except torch.cuda.OutOfMemoryError:
                if size <= 1:
                    raise
                size = max(1, size // 2)
                torch.cuda.empty_cache()
                log.warning("%s evaluation ran out of GPU memory; retrying with batches of %d", split, size)
                if split == "reference":
                    self.reference_batch_size = size

    def _evaluate(self, split: str, batch_size: int) -> tuple[float, float]:
        model = self.state.model
        model.eval()
        sums = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss sum, correct, count
        for xb, yb in self.data.eval_batches(split, batch_size, dist=self._rank_split):
            with self.autocast():
                logits = self.eval_forward(xb)
            sums[0] += self.criterion.per_sample(logits, yb).sum()
            sums[1] += (logits.argmax(1) == yb).sum()
            sums[2] += len(yb)
        loss_sum, correct, n = self.dist.sum(sums).tolist()
        return loss_sum / max(1, n), 100.0 * correct / max(1, n)

    def open_plan(self) -> EpochPlan:
        """The engine's plan of this epoch: selected, shuffled by the run's generator and cut to the budget (a
        batch-level policy draws batches of its ``draw_batch_size`` and is cut batch by batch instead)."""
        self.engine.epoch = self.state.epoch
        size = self.state.policy.draw_batch_size or self.batch_size
        return self.engine.open_epoch(size, self.dist.rank, self.dist.world_size)

    def _select_in_batch(self, batch, n_drawn: int):
        """Let a batch-level policy keep a subset of the drawn batch (no-grad forward, counted apart); with
        several ranks each selects within its part of the drawn global batch of ``n_drawn``."""
        model = self.state.model
        model.eval()
        with torch.no_grad(), self.autocast():
            feats, logits = features_and_logits(model, batch.x)
        model.train()
        self.state.selection_fwd += n_drawn
        policy = self.state.policy
        keep = self.dist.per_rank_draws(
            policy.generator, lambda: policy.select_in_batch(feats.float(), logits.float(), batch.y, batch.idx)
        )
        batch = batch.subset(keep)
        if self.dist.active:
            return self._cut_to_budget(batch)
        batch = batch.subset(slice(0, self.state.budget.remaining))
        return batch, len(batch.idx)

    def _cut_to_budget(self, batch):
        """Keep at most the remaining budget of this global batch (ranks in order); returns (batch, global size)."""
        counts = self.dist.gather_cat(torch.tensor([len(batch.idx)], device=self.device)).tolist()
        before = sum(counts[: self.dist.rank])
        room = max(0, min(len(batch.idx), self.state.budget.remaining - before))
        return batch.subset(slice(0, room)), min(sum(counts), self.state.budget.remaining)

    @torch.no_grad()
    def score_unselected(self, trained: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Losses of the samples that did not train this epoch (no-grad, eval mode), for policies such as IES
        whose excluded samples keep being scored and can come back; counted as selection forward passes."""
        rest = torch.ones(self.data.num_samples, dtype=torch.bool, device=self.device)
        rest[trained] = False
        rest_idx = rest.nonzero().squeeze(1)
        model = self.state.model
        model.eval()
        losses = []
        mine = []
        slices = [slice(a, b) for a, b in batch_bounds(len(rest_idx), self.batch_size, self.dist.world_size)]
        for batch in self.data.train_batches(rest_idx, slices, self.state.augment_gen, dist=self._rank_split):
            with self.autocast():
                losses.append(self.criterion.per_sample(self.eval_forward(batch.x), batch.y, batch.idx))
            mine.append(batch.idx)
        model.train()
        self.state.selection_fwd += len(rest_idx)
        loss_t = torch.cat(losses) if losses else torch.empty(0, device=self.device)
        if not self.dist.active:
            return rest_idx, loss_t
        return self.dist.gather_cat(torch.cat(mine) if mine else rest_idx[:0]), self.dist.gather_cat(loss_t)

    def train_epoch(self, plan: EpochPlan, bar=None) -> tuple[float, float]:
        """One pass over the plan's global batches through ``engine.update``; returns (weighted loss, last lr).

        Nothing in the loop waits for the device: the weighted loss is summed on the device and read once
        at the end, and the progress bar counts on the host.
        """
        st, crit, engine = self.state, self.criterion, self.engine
        st.model.train()
        in_batch = st.policy.selects_in_batch
        dist, world = self.dist, self.dist.world_size
        # Batch callbacks may live on rank 0 alone (records, test hooks); the gather they need is a collective,
        # so every rank joins it when any rank has one.
        gather_batches = any(dist.gather_objects(bool(self.batch_callbacks)))
        weighted_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        slices = [slice(a, b) for a, b in plan.bounds]
        strong = crit.needs_strong_view
        for sl, batch in zip(
            slices, self.data.train_batches(plan.indices, slices, st.augment_gen, strong=strong, dist=self._rank_split)
        ):
            n_global = sl.stop - sl.start  # this step's global batch; this rank trains its part of it
            if in_batch:
                batch, n_global = self._select_in_batch(batch, n_global)
                if n_global == 0:
                    continue
            self.schedule.apply(st.optimizer, st.budget.progress)
            with self.autocast():
                if batch.x_strong is not None:
                    both = self.forward(torch.cat([batch.x, batch.x_strong]))
                    logits, logits_strong = both[: len(batch.idx)], both[len(batch.idx) :]
                else:
                    logits, logits_strong = self.forward(batch.x), None
            loss_vec = crit.per_sample(logits, batch.y, batch.idx, logits_strong)
            # The engine weights, scales by this rank's share of the global batch (DDP averages gradients over
            # ranks), records the pairs and spends the global batch's forward passes.
            if in_batch:
                loss = engine.update_selected(loss_vec, batch.idx, n_global)
            else:
                loss = engine.update(loss_vec, batch.idx)
            loss = loss + crit.batch_term(logits, batch.y, batch.idx)
            st.optimizer.zero_grad(set_to_none=True)
            crit.zero_grad()
            loss.backward()
            st.optimizer.step()
            crit.step()
            weighted_sum += loss.detach() * (n_global / world)
            if gather_batches:
                idx, lg, y = batch.idx, logits.detach().float(), batch.y
                if dist.active:
                    idx, lg, y = dist.gather_cat(idx), dist.gather_cat(lg), dist.gather_cat(y)
                for cb in self.batch_callbacks:
                    cb(st.epoch, idx, lg, y)
            if bar is not None:
                bar.update(n_global)
            if st.budget.exhausted:
                break
        return float(dist.sum(weighted_sum)), st.optimizer.param_groups[0]["lr"]

    def train_order(self, indices: torch.Tensor, weights: torch.Tensor) -> tuple[float, float]:
        """One epoch over a fixed order with fixed weights, no selection and no reference pass (the scorer sees
        the losses, the reference history a NaN): the loop the speed scripts time. Returns ``train_epoch``'s."""
        self.engine.epoch = self.state.epoch
        plan = self.engine.open_fixed_epoch(indices, weights, self.batch_size, self.dist.rank, self.dist.world_size)
        out = self.train_epoch(plan)
        self.engine.end_epoch(reference_loss=math.nan)
        self.state.epoch += 1
        return out

    def run_epoch(self, bar=None) -> dict:
        """Select, train, score and evaluate one epoch; returns its metrics record."""
        st, data = self.state, self.data
        epoch, t0 = st.epoch, time.perf_counter()
        cold = st.scorer.ranks_by_cold_start  # what ranks this epoch's selection
        plan = self.open_plan()
        scores, selected, indices, weights = plan.scores, plan.selected, plan.indices, plan.weights
        weighted_sum, lr = self.train_epoch(plan, bar)
        rec: dict = {}
        ref_loss, ref_t0 = None, time.perf_counter()
        if st.scorer.needs_reference:
            ref_loss, ref_acc = self.evaluate("reference")
            st.reference_fwd += data.eval_size("reference")
            rec.update({"ref/loss": ref_loss, "ref/acc": ref_acc})
        ref_s = time.perf_counter() - ref_t0
        self.engine.end_epoch(reference_loss=ref_loss)  # gathers every rank's pairs, feeds the scorer
        trained, losses = self.engine.last_trained
        if st.policy.scores_unselected:
            st.scorer.observe(*self.score_unselected(trained), epoch)
        weighted_loss = weighted_sum / max(1, len(trained))
        train_s = time.perf_counter() - t0 - ref_s  # selection, training and scoring; not the reference pass
        done = st.budget.exhausted or (self.max_epochs is not None and epoch + 1 >= self.max_epochs)
        if (epoch + 1) % self.eval_every == 0 or done:
            self.last_test = self.evaluate("test")
        is_noisy = data.is_noisy
        last_loss, observed = st.scorer.last_losses()
        n = data.num_samples
        acct = metrics.pruning_accounting(scores, cold, selected, len(trained), n, st.policy.selects_in_batch)
        rec.update(
            {
                "epoch": epoch,
                "progress": st.budget.progress,
                "lr": lr,
                **metrics.mean_losses(last_loss, observed, is_noisy),
                "train/loss": losses.mean().item() if len(losses) else float("nan"),
                "train/weighted_loss": weighted_loss,
                "test/loss": self.last_test[0],
                "test/acc": self.last_test[1],
                "prune/selected_fraction": selected / n,
                "prune/kept_fraction": len(trained) / n,
                **acct,
                **metrics.noise_detection(scores, trained, weights, last_loss, observed, is_noisy),
                "fwd/train": st.budget.spent,
                "fwd/reference": st.reference_fwd,
                "fwd/selection": st.selection_fwd,
                "time/train_s": train_s,
                "time/epoch_s": time.perf_counter() - t0,
                "dist/world_size": self.dist.world_size,
                "dist/global_batch_size": self.batch_size,
            }
        )
        if self.check_ranks:
            rec.update(self._rank_digests(indices, weights))
        if st.policy.stats:  # a dict, empty only if this select recorded nothing: no annealing flag then
            rec["prune/annealing"] = bool(st.policy.stats.get("annealing", False))
        st.epoch += 1
        for cb in self.callbacks:
            cb(
                rec,
                {"scores": scores, "is_noisy": is_noisy, "last_loss": last_loss, "trained": trained, "losses": losses},
            )
        return rec

    def _rank_digests(self, indices: torch.Tensor, weights: torch.Tensor) -> dict:
        """Every rank's hash of this epoch's selection, weights and scorer state (``dist_check=true``)."""
        digests = self.dist.gather_objects(distributed.state_digest(indices, weights, self.state.scorer))
        if len(set(digests)) > 1:
            log.error("ranks diverged at epoch %d: state digests %s", self.state.epoch, digests)
        return {"dist/digests": ",".join(digests), "dist/consistent": len(set(digests)) == 1}

    def fit(self) -> dict:
        """Train until the budget is spent; returns the run's summary figures.

        Continues from ``self.history`` (a restored checkpoint). Raises TrainingDiverged when an epoch's
        training loss is not finite or above ``divergence_threshold`` (an absolute loss; inf: no bound).
        """
        st, t0 = self.state, time.perf_counter()
        history = self.history
        with tqdm(
            total=st.budget.total,
            initial=st.budget.spent,
            unit="fwd",
            unit_scale=True,
            disable=not (self.progress_bar and self.dist.is_main),
            mininterval=1.0,
            leave=False,
        ) as bar:
            while not st.budget.exhausted:
                if self.max_epochs is not None and st.epoch >= self.max_epochs:
                    log.warning(
                        "stopped at the epoch limit (%d) with %.1f%% of the budget unspent",
                        self.max_epochs,
                        100 * (1 - st.budget.progress),
                    )
                    break
                rec = self.run_epoch(bar)
                history.append(rec)
                lim, losses = self.max_loss, (rec["train/weighted_loss"], rec["train/loss"])
                bad = [v for v in losses if not math.isfinite(v) or v > lim]
                if bad and rec["prune/kept_fraction"] > 0:
                    raise TrainingDiverged(rec["epoch"], bad[0], f" (loss limit {lim:.4g})" * (bad[0] > lim))
                bar.set_postfix(epoch=rec["epoch"], acc=f"{rec['test/acc']:.1f}")
                log.info(
                    "epoch %3d | kept %.3f | noisy kept %.3f | loss %.4f | test acc %.2f | score AUROC %.3f | %.1fs",
                    rec["epoch"],
                    rec["prune/kept_fraction"],
                    rec["prune/kept_noisy_fraction"],
                    rec["train/loss"],
                    rec["test/acc"],
                    rec["score/noise_auroc"],
                    rec["time/epoch_s"],
                )
                for hook in self.epoch_end_hooks:
                    hook(history)
        return self.summarize(history, time.perf_counter() - t0)

    def summarize(self, history: list[dict], wall_time_s: float) -> dict:
        """Run-level figures from the epoch records (``train.summary.summarize``)."""
        return summarize(
            history,
            self.state,
            self.last_test,
            wall_time_s,
            world_size=self.dist.world_size,
            global_batch_size=self.batch_size,
        )
