"""One epoch protocol: a plain PyTorch loop driving the engine trains exactly what the project's trainer trains."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset, default_collate

from alignprune_exp.pipeline.build import build_trainer
from alignprune_exp.plugin import IndexedDataset, ProgressLR, PruningEngine
from tests.conftest import TINY_DIGITS

WINDOW, SEED = 3, 4


def _trainer_run(compose_cfg):
    """Fit the trainer on digits (InfoBatch + DAS, r30), recording each epoch's plan and trained pairs."""
    cfg = compose_cfg([*TINY_DIGITS, "pruner=infobatch_das", f"pruner.scorer.window={WINDOW}", f"seed={SEED}"])
    epochs = []
    trainer, _ = build_trainer(cfg, callbacks=[lambda rec, extra: epochs.append(dict(extra))])
    initial = copy.deepcopy(trainer.state.model)
    plans, open_plan = [], trainer.open_plan

    def recording_open_plan():
        plans.append(open_plan())
        return plans[-1]

    trainer.open_plan = recording_open_plan
    trainer.fit()
    return cfg, trainer, initial, plans, epochs


def _plain_loop(cfg, trainer, model):
    """The loop of docs/plugin.md on the same tensors, seed and optimizer settings, with torch's own SGD."""
    data, n = trainer.data, trainer.data.num_samples
    engine = PruningEngine.alignprune(n, epochs=int(cfg.epochs), ratio=0.3, window=WINDOW, seed=SEED)
    augment_gen = torch.Generator().manual_seed(SEED + 1)  # the trainer's augmentation seed

    def augmented(items):
        """Collate raw uint8 images, then jitter and normalise the whole batch (the trainer's batched augment)."""
        x, y, idx = default_collate(items)
        return data.augment(x, generator=augment_gen, train=True), y, idx

    dataset = IndexedDataset(TensorDataset(data.x, data.y))
    loader = DataLoader(dataset, batch_sampler=engine.batch_sampler(128), collate_fn=augmented)
    ref_x = data.augment(data.ref_x, train=False)
    reference = DataLoader(TensorDataset(ref_x, data.ref_y), batch_size=trainer.reference_batch_size)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.SGD(
        [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": cfg.optimizer.weight_decay}],
        lr=cfg.optimizer.lr,
        momentum=cfg.optimizer.momentum,
    )
    sched = ProgressLR(opt, engine, trainer.schedule.factor, trainer.schedule.momentum)
    plans, trained = [], []
    while not engine.exhausted:
        for x, y, idx in loader:
            if engine.plan.step == 0:
                plans.append(engine.plan)
            loss = engine.update(F.cross_entropy(model(x), y, reduction="none"), idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        engine.end_epoch(model, reference=reference)
        trained.append(engine.last_trained)
    return engine, plans, trained


def test_a_plain_loop_equals_the_project_trainer(compose_cfg):
    cfg, trainer, model, trainer_plans, epochs = _trainer_run(compose_cfg)
    engine, plans, trained = _plain_loop(cfg, trainer, model)
    assert len(plans) == len(trainer_plans) == len(epochs) >= 5
    pruned = 0
    for mine, theirs, (seen, losses), rec in zip(plans, trainer_plans, trained, epochs):
        assert torch.equal(mine.indices, theirs.indices)  # the selection, in training order
        assert torch.equal(mine.weights, theirs.weights)  # the 1/(1-r) rescaling
        assert torch.equal(mine.scores, theirs.scores)  # loss ranking, then DAS
        assert torch.equal(seen, rec["trained"]) and torch.equal(losses, rec["losses"])
        pruned += len(mine.indices) < trainer.data.num_samples
    assert pruned >= 3  # the epochs really prune
    assert engine.budget.spent == trainer.state.budget.spent == trainer.state.budget.total
    assert torch.equal(engine.scorer.scores(), trainer.state.scorer.scores())
    for a, b in zip(model.parameters(), trainer.state.model.parameters(), strict=True):
        assert torch.equal(a, b)
