"""``PruningEngine``: the project's scorer, policy and forward-pass budget behind three calls of a plain loop."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from alignprune_exp.core.distributed import Dist, check_global_batch
from alignprune_exp.core.errors import ConfigError
from alignprune_exp.plugin import presets
from alignprune_exp.plugin.budget import ForwardBudget
from alignprune_exp.plugin.collect import any_rank, distributed_rank, distributed_world, reference_mean_loss
from alignprune_exp.plugin.data import PlanBatchSampler
from alignprune_exp.plugin.plan import EpochPlan
from alignprune_exp.pruning.base import Policy
from alignprune_exp.scoring.base import Scorer

FORMAT_VERSION = 1


def _cpu(obj: Any) -> Any:
    """A copy of a (nested) state with every tensor on the CPU, so a saved state loads on any device."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    return obj


class PruningEngine:
    """Each epoch the policy turns the scorer's scores into (indices, weights); the user's loop trains them.

    The protocol is the project trainer's: the selection is shuffled by the engine's private generator and cut
    to the forward-pass budget; ``update`` returns ``mean(w[idx] * loss)`` scaled by the rank's share of the
    global batch and spends the global batch's forward passes; ``end_epoch`` feeds every rank's (index, loss)
    pairs and the reference set's mean loss to the scorer. No global RNG is read or written; the state
    (``state_dict``) is independent of the world size.

    Args:
        scorer: a ``alignprune_exp.scoring`` scorer (LossScorer, DASScorer).
        policy: a per-epoch ``alignprune_exp.pruning`` policy (InfoBatch, SeTa, RandomDynamic, FullData);
            batch-level ones (DivBS, IES) and static ones are trainer-only.
        budget: the forward-pass budget (``ForwardBudget.from_ratio(epochs, n, ratio)``).
        seed: seed of the shuffle generator (the policy has its own).
        device: where the scorer, the plan and the weights live: the model's device.
        config: what fingerprints the state (the constructors pass their arguments).
        shuffle_gen: the shuffle generator to use instead of one seeded by ``seed`` (the project's trainer passes
            its run state's, which its checkpoints save).
        in_trainer: accept the trainer-only policies: the project's ``Trainer`` adds what they need on top of the
            engine (a no-grad pass to select inside each drawn batch, ``update_selected``; scoring the samples that
            did not train). A plain loop leaves it False.
    """

    def __init__(
        self,
        scorer: Scorer,
        policy: Policy,
        budget: ForwardBudget,
        *,
        seed: int = 0,
        device: torch.device | str = "cpu",
        config: dict[str, Any] | None = None,
        shuffle_gen: torch.Generator | None = None,
        in_trainer: bool = False,
    ) -> None:
        if not in_trainer and (policy.selects_in_batch or policy.scores_unselected or policy.needs_warmup):
            raise ConfigError(
                f"{type(policy).__name__} selects inside batches, scores unselected samples or needs a warm-up: "
                "it is trainer-only (python train.py pruner=...); the engine takes per-epoch policies"
            )
        if scorer.num_samples != policy.num_samples:
            raise ConfigError(f"scorer has {scorer.num_samples} samples but policy {policy.num_samples}")
        self.device = torch.device(device)
        self.scorer, self.policy, self.budget = scorer.to(self.device), policy.to(self.device), budget
        self.num_samples, self.seed = scorer.num_samples, int(seed)
        self.shuffle_gen = torch.Generator().manual_seed(self.seed) if shuffle_gen is None else shuffle_gen
        base = {"scorer": type(scorer).__qualname__, "policy": type(policy).__qualname__, "seed": self.seed}
        base.update(num_samples=self.num_samples, budget=[budget.total, budget.full])
        self.config = {**base, **(config or {})}
        self.epoch, self.reference_fwd = 0, 0
        self.rank, self.world_size = 0, 1
        self._plan: EpochPlan | None = None
        self.last_trained: tuple[torch.Tensor, torch.Tensor] | None = None  # the closed epoch's (index, loss) pairs

    # -- constructors with the YAML defaults ------------------------------------------------------------------
    @classmethod
    def alignprune(cls, num_samples: int, epochs: int, ratio: float, *, device="cpu", **options) -> PruningEngine:
        """AlignPrune: InfoBatch ranked by DAS (``pruner=infobatch_das``); options: ``presets.infobatch_das``."""
        return cls(**presets.infobatch_das(num_samples, epochs, ratio, **options), device=device)

    infobatch_das = alignprune

    @classmethod
    def infobatch(cls, num_samples: int, epochs: int, ratio: float, *, device="cpu", **options) -> PruningEngine:
        """InfoBatch ranked by the last loss (``pruner=infobatch``); options: ``presets.infobatch``."""
        return cls(**presets.infobatch(num_samples, epochs, ratio, **options), device=device)

    @classmethod
    def seta(cls, num_samples: int, epochs: int, ratio: float, *, device="cpu", **options) -> PruningEngine:
        """SeTa ranked by the last loss (``pruner=seta``); options: ``presets.seta``."""
        return cls(**presets.seta(num_samples, epochs, ratio, **options), device=device)

    @classmethod
    def seta_das(cls, num_samples: int, epochs: int, ratio: float, *, device="cpu", **options) -> PruningEngine:
        """SeTa ranked by DAS (``pruner=seta_das``); options: ``presets.seta_das``."""
        return cls(**presets.seta_das(num_samples, epochs, ratio, **options), device=device)

    @classmethod
    def random_dynamic(cls, num_samples: int, epochs: int, ratio: float, *, device="cpu", **options) -> PruningEngine:
        """Dynamic random pruning (``pruner=random_dynamic``); options: ``presets.random_dynamic``."""
        return cls(**presets.random_dynamic(num_samples, epochs, ratio, **options), device=device)

    # -- where the run is -------------------------------------------------------------------------------------
    @property
    def progress(self) -> float:
        """Fraction of the forward-pass budget spent, in [0, 1]: what schedules and annealing follow."""
        return self.budget.progress

    @property
    def exhausted(self) -> bool:
        """True once the budget is spent: the run is over."""
        return self.budget.exhausted

    @property
    def plan(self) -> EpochPlan | None:
        """The open epoch's plan (its ``indices`` in training order, ``weights``, ``scores``), None between epochs."""
        return self._plan

    @property
    def cursor(self) -> tuple[int, int]:
        """(epoch, global batches of it trained so far)."""
        return self.epoch, self._plan.step if self._plan is not None else 0

    @property
    def fingerprint(self) -> str:
        """Short hash of the configuration; a state saved under another one is refused."""
        return hashlib.sha256(json.dumps(self.config, sort_keys=True).encode()).hexdigest()[:16]

    # -- the epoch plan ---------------------------------------------------------------------------------------
    def batch_sampler(
        self, global_batch_size: int, rank: int | None = None, world_size: int | None = None
    ) -> PlanBatchSampler:
        """A DataLoader ``batch_sampler`` yielding this rank's part of each global batch of the epoch's plan.

        ``rank`` / ``world_size`` default to torch.distributed's (0 and 1 without a process group); explicit
        values must match an initialised group. The global batch must split evenly over the ranks (as the trainer).
        """
        group_rank, group_world = distributed_rank(), distributed_world()
        rank = group_rank if rank is None else int(rank)
        world_size = group_world if world_size is None else int(world_size)
        if group_world > 1 and (rank, world_size) != (group_rank, group_world):
            raise ConfigError(
                f"batch_sampler(rank={rank}, world_size={world_size}) but this process is rank {group_rank} of "
                f"{group_world}: leave them out under torch.distributed"
            )
        if not 0 <= rank < world_size or int(global_batch_size) < 1:
            raise ConfigError(f"need 0 <= rank < world_size and a positive batch, got {rank}, {world_size}")
        check_global_batch(int(global_batch_size), Dist(rank, world_size), "global_batch_size")
        self.rank, self.world_size = rank, world_size
        return PlanBatchSampler(self, int(global_batch_size), rank, world_size)

    def open_epoch(self, batch_size: int, rank: int, world_size: int) -> EpochPlan:
        """The current epoch's plan, selected now if none is open (the sampler calls this)."""
        self.rank, self.world_size = rank, world_size
        plan = self._plan
        if plan is None:
            if self.exhausted:
                raise RuntimeError(f"the forward-pass budget ({self.budget.total}) is spent: stop at engine.exhausted")
            plan = self._plan = self._select(batch_size, world_size)
        elif (plan.batch_size, plan.world_size) != (batch_size, world_size):
            plan.reslice(batch_size, world_size)
        return plan

    def _select(self, batch_size: int, world_size: int) -> EpochPlan:
        """Select, shuffle with the private generator and cut to the budget, as the trainer's ``run_epoch``."""
        scores = self.scorer.scores()
        indices, weights = self.policy.select(scores, self.epoch, progress=self.budget.progress)
        selected = len(indices)
        perm = torch.randperm(selected, generator=self.shuffle_gen).to(indices.device)
        if self.policy.selects_in_batch:  # the cut happens after each batch's own selection (update_selected)
            n = selected
        else:
            n = self.budget.grant(selected)
            if 0 < n < world_size:  # the budget's last samples: at most world_size - 1 extra passes, no empty rank
                n = min(selected, world_size)
        if 0 < selected and n < world_size:
            raise ConfigError(f"epoch {self.epoch} selected {selected} samples, fewer than the {world_size} ranks")
        return EpochPlan(
            epoch=self.epoch,
            indices=indices[perm][:n].to(self.device),
            weights=weights.to(self.device),
            selected=selected,
            annealing=bool(self.policy.stats.get("annealing", False)),
            batch_size=batch_size,
            world_size=world_size,
            scores=scores,
        )

    def open_fixed_epoch(
        self, indices: torch.Tensor, weights: torch.Tensor, batch_size: int, rank: int = 0, world_size: int = 1
    ) -> EpochPlan:
        """Open an epoch over a given training order and weights instead of the policy's selection (speed scripts
        time the loop on a fixed order; replays of a recorded run); cut to the budget, trained and closed as any."""
        if self._plan is not None:
            raise RuntimeError(f"epoch {self.epoch} is open: call end_epoch(...) first")
        self.rank, self.world_size = int(rank), int(world_size)
        n = self.budget.grant(len(indices))
        self._plan = EpochPlan(
            epoch=self.epoch,
            indices=indices[:n].to(self.device),
            weights=weights.to(self.device),
            selected=len(indices),
            annealing=False,
            batch_size=int(batch_size),
            world_size=self.world_size,
        )
        return self._plan

    def _open_plan(self, what: str) -> EpochPlan:
        if self._plan is None:
            raise RuntimeError(f"{what}: no epoch is open; iterate a DataLoader over engine.batch_sampler(...) first")
        return self._plan

    # -- the loss side ----------------------------------------------------------------------------------------
    def weights(self, index: torch.Tensor) -> torch.Tensor:
        """This epoch's loss weights of ``index`` (1 unless the policy rescales), for a custom reduction."""
        plan = self._open_plan("weights()")
        return plan.weights[index.reshape(-1).to(self.device, torch.int64, non_blocking=True)]

    def update(self, per_sample_loss: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """The loss to backpropagate for one batch of the plan; records the batch and spends its budget.

        ``per_sample_loss`` is the [B] vector of ``reduction="none"`` (left unmodified), ``index`` the batch's
        dataset indices (the third item of ``IndexedDataset``). Returns ``mean(w[idx] * loss)`` scaled by
        ``B * world_size / global_batch`` (DDP averages gradients over ranks, so the update is that of the global
        batch's mean). No host sync: indices other than the plan's are flagged on the device and raise in
        ``end_epoch``. Call once per batch, in the order the sampler yields them.
        """
        plan = self._open_plan("update()")
        if per_sample_loss.dim() != 1:
            raise ValueError(
                f"update() needs per-sample losses [B], got shape {tuple(per_sample_loss.shape)}: "
                'compute the loss with reduction="none"'
            )
        if plan.done:
            raise RuntimeError(
                f"all {plan.num_batches} batches of epoch {plan.epoch} are trained: call engine.end_epoch(...) first"
            )
        lo, hi = plan.part(plan.step, self.rank)
        if per_sample_loss.numel() != hi - lo or index.numel() != hi - lo:
            raise ValueError(
                f"batch {plan.step} of the plan has {hi - lo} samples on this rank, got {per_sample_loss.numel()} "
                f"losses and {index.numel()} indices: feed the DataLoader from engine.batch_sampler(...)"
            )
        idx = index.reshape(-1).to(self.device, torch.int64, non_blocking=True)
        start, stop = plan.bounds[plan.step]
        plan.check(idx, lo, hi)
        return self._step(plan, per_sample_loss, idx, stop - start)

    def update_selected(self, per_sample_loss: torch.Tensor, index: torch.Tensor, global_size: int) -> torch.Tensor:
        """``update`` for a policy that selects inside each drawn batch of the plan (the trainer's DivBS path):
        the samples this rank kept of the current batch, ``global_size`` of them over all ranks (already cut to
        the budget). A rank that kept none passes empty tensors and gets a zero loss."""
        plan = self._open_plan("update_selected()")
        if plan.done:
            raise RuntimeError(f"all {plan.num_batches} batches of epoch {plan.epoch} are trained")
        idx = index.reshape(-1).to(self.device, torch.int64, non_blocking=True)
        return self._step(plan, per_sample_loss, idx, int(global_size))

    def _step(self, plan: EpochPlan, per_sample_loss: torch.Tensor, idx: torch.Tensor, n_global: int) -> torch.Tensor:
        """``mean(w[idx] * loss)`` scaled by this rank's share of the global batch; records it, spends its budget."""
        weighted = per_sample_loss * plan.weights[idx]
        loss = weighted.mean() * (idx.numel() * self.world_size / n_global) if idx.numel() else weighted.sum()
        plan.record(idx, per_sample_loss)
        self.budget.spend(n_global)
        return loss

    # -- the epoch's end --------------------------------------------------------------------------------------
    def end_epoch(
        self,
        model: nn.Module | None = None,
        reference: Iterable | Callable | None = None,
        reference_loss: float | None = None,
        loss_fn: Callable = F.cross_entropy,
    ) -> dict[str, Any]:
        """Feed the epoch's losses (every rank's) and the reference loss to the scorer; advance the epoch.

        A scorer that ``needs_reference`` (DAS) needs either ``reference_loss`` (the user's clean-set mean loss) or
        ``reference``: batches of (x, y) evaluated with ``loss_fn(model(x), y, reduction="none")`` in eval
        mode outside DDP, or a callable taking the model and returning per-sample losses. Under
        torch.distributed every rank calls it (collectives). Returns the epoch's figures.
        """
        plan = self._open_plan("end_epoch()")
        ref = None
        if self.scorer.needs_reference:
            if reference_loss is not None:
                ref = float(reference_loss)
            elif reference is not None:
                ref, count = reference_mean_loss(model, reference, loss_fn, self.device)
                self.reference_fwd += count
            else:
                raise ValueError(
                    f"{type(self.scorer).__name__} needs the clean reference set's loss every epoch: "
                    "pass end_epoch(model, reference=<loader or callable>) or reference_loss=<float>"
                )
        seen, losses = plan.gather()
        if any_rank(plan.bad):
            raise ValueError(
                f"epoch {plan.epoch}: update() got indices other than the plan's: pass each batch's own "
                "indices and feed the DataLoader from engine.batch_sampler(...) (no shuffling or other sampler)"
            )
        self.scorer.observe(seen, losses, plan.epoch)
        if ref is not None:
            self.scorer.observe_reference(plan.epoch, ref)
        self.epoch, self._plan, self.last_trained = self.epoch + 1, None, (seen, losses)
        return {
            "epoch": plan.epoch,
            "selected": plan.selected,
            "trained": int(seen.numel()),
            "annealing": plan.annealing,
            "progress": self.progress,
            "reference_loss": ref,
        }

    # -- state ------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything to continue exactly, on the CPU: scorer, policy, budget, generator, epoch, counters and,
        mid-epoch, the open plan with its cursor and every rank's trained pairs (a collective: call on every
        rank). Independent of the world size; holds no model, optimizer or global RNG state."""
        return {
            "format": FORMAT_VERSION,
            "fingerprint": self.fingerprint,
            "epoch": self.epoch,
            "scorer": _cpu(self.scorer.state_dict()),
            "policy": _cpu(self.policy.state_dict()),
            "budget": self.budget.state_dict(),
            "shuffle_gen": self.shuffle_gen.get_state(),
            "counters": {"reference_fwd": self.reference_fwd},
            "plan": None if self._plan is None else self._plan.state_dict(),
        }

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Restore a ``state_dict``; refuses one of another format or configuration (one-line ConfigError)."""
        if sd.get("format") != FORMAT_VERSION:
            raise ConfigError(f"engine state format {sd.get('format')!r} is not {FORMAT_VERSION}")
        if sd["fingerprint"] != self.fingerprint:
            raise ConfigError(
                f"engine state is of another configuration (fingerprint {sd['fingerprint']}, this engine "
                f"{self.fingerprint}): build the engine with the arguments of the saved run"
            )
        self.scorer.load_state_dict(sd["scorer"])
        self.policy.load_state_dict(sd["policy"])
        self.budget.load_state_dict(sd["budget"])
        self.shuffle_gen.set_state(sd["shuffle_gen"])
        self.epoch, self.reference_fwd = int(sd["epoch"]), int(sd["counters"]["reference_fwd"])
        plan = sd["plan"]
        self._plan = None if plan is None else EpochPlan.from_state(plan, self.device, self.world_size)
