"""The Lightning callback: Trainer.fit trains what the plain loop of docs/plugin.md trains, bit for bit; an
epoch-end checkpoint resumes exactly; Trainer flags that would change the training are refused in one line."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip("lightning.pytorch", reason="lightning is not installed: pip install -e '.[lightning]'")
load_digits = pytest.importorskip("sklearn.datasets").load_digits

from alignprune_exp.core.errors import ConfigError  # noqa: E402
from alignprune_exp.plugin import IndexedDataset, ProgressLR, PruningEngine  # noqa: E402
from alignprune_exp.plugin.lightning import AlignPruneCallback, plan_sampler  # noqa: E402

EPOCHS, RATIO, BATCH = 4, 0.5, 64


def factor(p: float) -> float:
    return 0.5 * (1 + math.cos(math.pi * p))


@pytest.fixture(scope="module")
def data():
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x, dtype=torch.float32) / 16, torch.tensor(y)
    return IndexedDataset(TensorDataset(x[200:], y[200:])), DataLoader(TensorDataset(x[:200], y[:200]), batch_size=256)


@pytest.fixture(autouse=True)
def torch_flags():
    """Trainer(deterministic=True) switches torch's global deterministic mode on: restore it for other tests."""
    saved = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    yield
    torch.use_deterministic_algorithms(saved[0])
    torch.backends.cudnn.benchmark = saved[1]


def make_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


class Lit(pl.LightningModule):
    """The documented pattern: the loader over engine.batch_sampler, training_step returns engine.update."""

    def __init__(self, train, engine: PruningEngine) -> None:
        super().__init__()
        self.net, self.train_set, self.engine, self.seen = make_net(), train, engine, []

    def forward(self, x):
        return self.net(x)

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_sampler=plan_sampler(self.engine, BATCH))

    def training_step(self, batch, batch_idx):
        xb, yb, idx = batch
        self.seen.append(idx.clone())
        return self.engine.update(F.cross_entropy(self(xb), yb, reduction="none"), idx)

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)
        return {
            "optimizer": opt,
            "lr_scheduler": {"scheduler": ProgressLR(opt, self.engine, factor), "interval": "step"},
        }


def trainer(**overrides) -> pl.Trainer:
    kwargs = dict(
        accelerator="cpu",
        devices=1,
        deterministic=True,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        max_epochs=-1,
        reload_dataloaders_every_n_epochs=1,
    )
    return pl.Trainer(**{**kwargs, **overrides})


def plain_loop(train, ref_loader):
    """docs/plugin.md's loop, recording the trained indices and the epochs' figures."""
    model, engine = make_net(), PruningEngine.alignprune(len(train), epochs=EPOCHS, ratio=RATIO)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = ProgressLR(opt, engine, factor)
    loader = DataLoader(train, batch_sampler=engine.batch_sampler(BATCH))
    seen, history = [], []
    while not engine.exhausted:
        for xb, yb, idx in loader:
            seen.append(idx.clone())
            loss = engine.update(F.cross_entropy(model(xb), yb, reduction="none"), idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        history.append(engine.end_epoch(model, reference=ref_loader))
    return model, engine, seen, history


def lightning_run(train, ref_loader, ckpt_dir=None, ckpt_path=None):
    engine = PruningEngine.alignprune(len(train), epochs=EPOCHS, ratio=RATIO)
    lit, callback = Lit(train, engine), AlignPruneCallback(engine, reference=ref_loader)
    callbacks = [callback]
    if ckpt_dir is not None:
        ckpt = pl.callbacks.ModelCheckpoint(dirpath=ckpt_dir, filename="{epoch}", save_top_k=-1, every_n_epochs=1)
        callbacks.append(ckpt)
    trainer(callbacks=callbacks, enable_checkpointing=ckpt_dir is not None).fit(lit, ckpt_path=ckpt_path)
    return lit, engine, callback


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    train, ref = data
    ckpt_dir = tmp_path_factory.mktemp("ckpt")
    return {"plain": plain_loop(train, ref), "lightning": lightning_run(train, ref, ckpt_dir=ckpt_dir), "dir": ckpt_dir}


def assert_same_parameters(a: nn.Module, b: nn.Module) -> None:
    pa, pb = list(a.parameters()), list(b.parameters())
    assert len(pa) == len(pb) and all(torch.equal(x, y) for x, y in zip(pa, pb))


def test_lightning_trains_what_the_plain_loop_trains(runs):
    model, engine, seen, history = runs["plain"]
    lit, lit_engine, callback = runs["lightning"]
    assert len(history) >= 3 and lit_engine.exhausted and lit_engine.budget.spent == engine.budget.spent
    assert callback.history == history  # selections, trained counts, annealing, progress, reference losses
    assert len(lit.seen) == len(seen) and all(torch.equal(a, b) for a, b in zip(lit.seen, seen))
    for key, value in engine.scorer.state_dict().items():
        other = lit_engine.scorer.state_dict()[key]
        assert torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other
    assert_same_parameters(lit.net, model)


def test_an_epoch_end_checkpoint_resumes_exactly(runs, data):
    train, ref = data
    lit, engine, callback = runs["lightning"]
    resumed, resumed_engine, resumed_cb = lightning_run(train, ref, ckpt_path=runs["dir"] / "epoch=1.ckpt")
    assert len(resumed.seen) < len(lit.seen)  # it trained only the epochs after the checkpoint
    assert resumed_cb.history == callback.history and resumed_engine.budget.spent == engine.budget.spent
    assert_same_parameters(resumed.net, lit.net)


@pytest.mark.parametrize(
    "flags, fix",
    [
        (dict(strategy="ddp", devices=2, use_distributed_sampler=True), "use_distributed_sampler=False"),
        (dict(accumulate_grad_batches=2), "accumulate_grad_batches=1"),
        (dict(reload_dataloaders_every_n_epochs=0), "reload_dataloaders_every_n_epochs=1"),
        (dict(max_epochs=1), "max_epochs=-1"),
        (dict(limit_train_batches=0.5), "leave both at their defaults"),
    ],
    ids=["ddp-sampler", "accumulate", "reload", "max-epochs", "limit"],
)
def test_a_misconfigured_trainer_is_refused_in_one_line(data, flags, fix):
    engine = PruningEngine.alignprune(len(data[0]), epochs=EPOCHS, ratio=RATIO)
    callback = AlignPruneCallback(engine, reference=data[1])
    lit = Lit(data[0], engine)
    with pytest.raises(ConfigError, match=fix) as err:  # setup only: no process is spawned, nothing trains
        callback.setup(trainer(callbacks=[callback], **flags), lit, "fit")
    assert "\n" not in str(err.value)


def test_fit_raises_the_setup_error(data):
    engine = PruningEngine.alignprune(len(data[0]), epochs=EPOCHS, ratio=RATIO)
    callback = AlignPruneCallback(engine, reference=data[1])
    with pytest.raises(ConfigError, match="accumulate_grad_batches=1"):
        trainer(callbacks=[callback], accumulate_grad_batches=2).fit(Lit(data[0], engine))
    assert engine.epoch == 0 and engine.budget.spent == 0


def test_a_mid_epoch_state_is_refused(data):
    train, _ = data
    engine = PruningEngine.alignprune(len(train), epochs=EPOCHS, ratio=RATIO)
    xb, yb, idx = next(iter(DataLoader(train, batch_sampler=engine.batch_sampler(BATCH))))
    engine.update(F.cross_entropy(make_net()(xb), yb, reduction="none"), idx)
    callback = AlignPruneCallback(PruningEngine.alignprune(len(train), epochs=EPOCHS, ratio=RATIO))
    with pytest.raises(ConfigError, match="epoch-end checkpoint"):
        callback.load_state_dict({"engine": engine.state_dict(), "history": []})


def test_a_loader_without_the_engines_sampler_is_refused(data):
    train, ref = data
    engine = PruningEngine.alignprune(len(train), epochs=EPOCHS, ratio=RATIO)
    lit = Lit(train, engine)
    lit.train_dataloader = lambda: DataLoader(train, batch_sampler=engine.batch_sampler(BATCH))
    with pytest.raises(ConfigError, match="batch_sampler=plan_sampler"):
        trainer(callbacks=[AlignPruneCallback(engine, reference=ref)]).fit(lit)
