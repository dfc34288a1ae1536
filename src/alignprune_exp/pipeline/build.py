"""Assemble one run's objects from the config: data, model, criterion, optimizer, scorer, policy, budget, trainer."""

from __future__ import annotations

import numpy as np
import torch
from omegaconf import DictConfig

from alignprune_exp.config.instantiate import instantiate
from alignprune_exp.core import distributed
from alignprune_exp.core.errors import ConfigError
from alignprune_exp.core.runtime import resolve_device, seed_everything
from alignprune_exp.losses.base import Criterion
from alignprune_exp.pipeline.data import build_data
from alignprune_exp.pipeline.warmup import run_warmup
from alignprune_exp.plugin.budget import ForwardBudget
from alignprune_exp.pruning.base import Policy
from alignprune_exp.pruning.full import FullData
from alignprune_exp.train import speed
from alignprune_exp.train.recorders import DynamicsRecorder
from alignprune_exp.train.state import RunState
from alignprune_exp.train.trainer import Trainer


def build_policy(cfg: DictConfig, data, info: dict, device: torch.device) -> Policy:
    """Instantiate the pruning policy; static policies first get the (cached) warm-up record they select from."""
    policy = instantiate(cfg.pruner.policy, num_samples=info["n_train"], seed=int(cfg.seed))
    if policy.needs_warmup:
        policy.prepare(
            run_warmup(
                cfg,
                data,
                num_classes=info["num_classes"],
                input_shape=info["input_shape"],
                device=device,
                cache_key_extra={},
                protocol=policy.warmup_protocol,
            )
        )
    return policy


def build_criterion(cfg: DictConfig, num_samples: int, num_classes: int, device: torch.device) -> Criterion:
    """The training loss; one whose per-sample parameters only one process can update is refused under DDP."""
    criterion = instantiate(cfg.loss, num_samples=num_samples, num_classes=num_classes).to(device)
    if distributed.current().active and criterion.per_sample_parameters:
        raise ConfigError(
            f"loss={cfg.loss._target_.rsplit('.', 1)[-1]} keeps per-sample parameters that "
            "only one process can update: run it with a single process"
        )
    return criterion


def _reference_batch_size(cfg: DictConfig, info: dict, device: torch.device) -> int | None:
    """``reference.batch_size``, else the whole evaluated reference set at once on CUDA, the training batch on CPU."""
    return cfg.reference.get("batch_size") or (
        info.get("n_reference_eval") if device.type == "cuda" else int(cfg.batch_size)
    )


def build_trainer(cfg: DictConfig, callbacks=()) -> tuple[Trainer, dict]:
    """Build data, model, optimizer, scorer, policy and budget from the config into a ready Trainer."""
    if cfg.num_threads:
        torch.set_num_threads(int(cfg.num_threads))
    dist = distributed.current()
    device = distributed.device_for(dist, resolve_device(str(cfg.device)))
    speed.configure_backends(device, cfg.get("cudnn_benchmark", True))
    seed_everything(int(cfg.seed))
    data, info = build_data(cfg, device)
    model = instantiate(cfg.model, num_classes=info["num_classes"], input_shape=info["input_shape"]).to(device)
    memory_format = speed.memory_format(cfg.get("channels_last", "auto"), model, device)
    model = model.to(memory_format=memory_format)
    n = info["n_train"]
    criterion = build_criterion(cfg, n, info["num_classes"], device)
    state = RunState(
        model=model,
        optimizer=instantiate(cfg.optimizer)(model, **speed.optimizer_kwargs(cfg.optimizer, device)),
        scorer=instantiate(cfg.pruner.scorer, num_samples=n).to(device),
        policy=build_policy(cfg, data, info, device),
        budget=ForwardBudget.from_ratio(int(cfg.epochs), n, float(cfg.ratio.value)),
        shuffle_gen=torch.Generator().manual_seed(int(cfg.seed)),
        augment_gen=torch.Generator(device=device).manual_seed(int(cfg.seed) + 1),
        criterion=criterion,
    )
    amp = device.type == "cuda" if str(cfg.amp) == "auto" else bool(cfg.amp)
    trainer = Trainer(
        state,
        data,
        instantiate(cfg.scheduler),
        device=device,
        batch_size=int(cfg.batch_size),
        eval_batch_size=int(cfg.eval_batch_size),
        criterion=criterion,
        amp=amp,
        eval_every=int(cfg.eval_every),
        max_epochs=int(np.ceil(cfg.epochs * cfg.max_epoch_factor)),
        callbacks=list(callbacks),
        progress_bar=bool(cfg.progress_bar),
        reference_batch_size=_reference_batch_size(cfg, info, device),
        memory_format=memory_format,
        forward=speed.model_forward(model, cfg.get("compile", False)),
        dist=dist,
        check_ranks=bool(cfg.get("dist_check", False)),
        # divergence_threshold x the chance-level loss ln(C); null: only a non-finite loss diverges
        divergence_threshold=float((cfg.get("divergence_threshold") or np.inf) * np.log(info["num_classes"])),
    )
    info["device"] = str(device)
    return trainer, info


def attach_dynamics(trainer: Trainer, epochs: int) -> DynamicsRecorder | None:
    """A Full-training run records every sample's given-label probability each epoch (None for other policies)."""
    if type(trainer.state.policy) is not FullData:
        return None
    recorder = DynamicsRecorder(trainer.data.y, epochs)  # full data: exactly ``epochs`` epochs
    trainer.batch_callbacks.append(recorder)
    return recorder
