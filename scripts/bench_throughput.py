#!/usr/bin/env python
"""Training throughput of the trainer against a bare PyTorch loop, and the cost of DAS epochs, in one run.

For each device row (CPU: ``small_cnn`` width 32 as in ``profile=cpu``; CUDA: ``resnet18_cifar``, bf16 autocast,
channels-last, fused SGD), on the same uint8 images (random, or CIFAR-10 with --data-dir), the same batched
crop + flip augmentation, optimizer (SGD momentum 0.9, wd 5e-4) and precision:

* ``trainer/bare``: seconds of ``Trainer.train_order`` over the training images / seconds of a bare loop
  (shuffle, augment, forward, mean cross-entropy, backward, step). Interleaved epochs; median ratio.
* ``DAS/loss``: seconds per trained image of a whole ``Trainer.run_epoch`` (InfoBatch r=0.5 selection,
  training, scoring) with the DAS scorer (bank update, correlation, reference pass over the whole reference
  set, or over ``--eval-size`` of it as ``reference.eval_size``) / the same with the loss scorer. Interleaved;
  median ratio. ``overhead %`` = AlignPrune's own work per epoch (reference pass + bank update + correlation,
  timed apart) / the loss-scored epoch.
* peak memory: CUDA ``max_memory_allocated`` per variant; on CPU the process's peak resident set.

Other processes share a CPU: the ratios come from interleaved repeats, never from one timing: the median of
the per-repeat ratios, and the ratio of the fastest epochs (the least disturbed ones).

    python scripts/bench_throughput.py                                    # CPU row (+ CUDA row when present)
    python scripts/bench_throughput.py --device cuda --train 40000 --reference 10000 --eval-size 1000
    python scripts/bench_throughput.py --device cpu --train 256 --reference 128 --eval-size 32 --repeats 1  # smoke
"""

from __future__ import annotations

import argparse
import copy
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from alignprune_exp.data.augment import BatchAugment  # noqa: E402
from alignprune_exp.data.batches import InMemoryData  # noqa: E402
from alignprune_exp.models.builders import build_model  # noqa: E402
from alignprune_exp.plugin.budget import ForwardBudget  # noqa: E402
from alignprune_exp.pruning import InfoBatch  # noqa: E402
from alignprune_exp.scoring import DASScorer, LossScorer  # noqa: E402
from alignprune_exp.train import speed  # noqa: E402
from alignprune_exp.train.schedule import Constant  # noqa: E402
from alignprune_exp.train.state import RunState  # noqa: E402
from alignprune_exp.train.trainer import Trainer  # noqa: E402

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
ROW_MODELS = {"cpu": ("small_cnn", {"width": 32, "depth": 3}), "cuda": ("resnet18_cifar", {})}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_images(data_dir: str | None, count: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    if data_dir:
        from alignprune_exp.data.cifar import load_cifar

        images = load_cifar("cifar10", data_dir)
        rows = torch.randperm(len(images.train_y), generator=torch.Generator().manual_seed(seed))[:count]
        return images.train_x[rows], torch.as_tensor(images.train_y)[rows].long()
    gen = torch.Generator().manual_seed(seed)
    return (
        torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=gen),
        torch.randint(0, 10, (count,), generator=gen),
    )


class Row:
    """One device's model, data and optimizer settings, shared by every variant it times."""

    def __init__(self, args, device: torch.device):
        self.device, self.args = device, args
        x, y = load_images(args.data_dir, args.train + args.reference)
        x, y = x.to(device), y.to(device)
        self.x, self.y = x[: args.train], y[: args.train]
        self.ref_x, self.ref_y = x[args.train :], y[args.train :]
        name, kwargs = ROW_MODELS[device.type] if args.model is None else (args.model, {})
        self.model_name = name
        torch.manual_seed(0)
        self.model0 = build_model(name, num_classes=10, **kwargs).to(device)
        self.memory_format = speed.memory_format("auto", self.model0, device)
        self.amp = device.type == "cuda"
        self.fused = speed.optimizer_kwargs({"opt": "momentum"}, device)
        self.augment = BatchAugment(CIFAR_MEAN, CIFAR_STD, crop_padding=4, hflip=True)

    def fresh(self):
        model = copy.deepcopy(self.model0).to(memory_format=self.memory_format)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, **self.fused)
        return model, opt

    def trainer(self, scorer: str, eval_size: int | None = None) -> Trainer:
        model, opt = self.fresh()
        n, dev = self.args.train, self.device
        ref = slice(0, eval_size)
        data = InMemoryData(
            x=self.x,
            y=self.y,
            y_clean=self.y,
            ref_x=self.ref_x[ref],
            ref_y=self.ref_y[ref],
            test_x=self.x[:0],
            test_y=self.y[:0],
            augment=self.augment,
        )
        state = RunState(
            model=model,
            optimizer=opt,
            scorer=(DASScorer(n, window=25) if scorer == "das" else LossScorer(n)).to(dev),
            policy=InfoBatch(n, prune_prob=0.5, delta=0.875, seed=0),
            budget=ForwardBudget(total=10**12, full=10**12),
            shuffle_gen=torch.Generator().manual_seed(0),
            augment_gen=torch.Generator(device=dev).manual_seed(1),
        )
        ref_batch = len(data.ref_y) if dev.type == "cuda" else self.args.batch_size  # as build_trainer
        return Trainer(
            state,
            data,
            Constant(),
            device=dev,
            batch_size=self.args.batch_size,
            amp=self.amp,
            eval_every=10**9,
            reference_batch_size=ref_batch,
            memory_format=self.memory_format,
        )

    def bare_epoch(self, model, opt, gen: torch.Generator) -> float:
        """A plain loop over the same images: seconds for one epoch."""
        n, bs = self.args.train, self.args.batch_size
        sync(self.device)
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=gen).to(self.device)
        for s in range(0, n, bs):
            b = order[s : s + bs]
            xb = self.augment(self.x[b], generator=gen if self.device.type == "cpu" else None)
            xb = xb.contiguous(memory_format=self.memory_format)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                logits = model(xb)
            loss = F.cross_entropy(logits.float(), self.y[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync(self.device)
        return time.perf_counter() - t0


def timed(device, fn) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def peak_memory(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB (process RSS)"


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def bench_row(args, device: torch.device) -> list[str]:
    row = Row(args, device)
    n, reps = args.train, args.repeats
    lines: list[str] = []

    def emit(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    emit(
        f"[{device}] {row.model_name}, {n} training / {args.reference} reference images, batch "
        f"{args.batch_size}, amp={'bf16' if row.amp else 'off'}, "
        f"{'channels-last' if row.memory_format == torch.channels_last else 'NCHW'}, "
        f"{'fused' if row.fused else 'for-loop'} SGD, {torch.get_num_threads()} threads"
    )

    # Trainer epoch vs bare loop, interleaved.
    trainer = row.trainer("loss")
    bare_model, bare_opt = row.fresh()
    gen = torch.Generator().manual_seed(3)
    idx_gen = torch.Generator().manual_seed(4)
    weights = torch.ones(n, device=device)
    trainer.train_order(torch.arange(min(n, 4 * args.batch_size), device=device), weights)  # warm-up
    row.bare_epoch(bare_model, bare_opt, gen)
    t_tr, t_bare, mem = [], [], {}
    for r in range(reps):
        for kind in ("trainer", "bare") if r % 2 == 0 else ("bare", "trainer"):
            reset_peak(device)
            if kind == "trainer":
                order = torch.randperm(n, generator=idx_gen).to(device)
                t_tr.append(timed(device, lambda order=order: trainer.train_order(order, weights)))
            else:
                t_bare.append(row.bare_epoch(bare_model, bare_opt, gen))
            mem[kind] = peak_memory(device)
    ratios = [a / b for a, b in zip(t_tr, t_bare)]
    emit(
        f"  trainer {n / statistics.median(t_tr):,.0f} img/s, bare loop {n / statistics.median(t_bare):,.0f} "
        f"img/s; trainer/bare time ratio median {statistics.median(ratios):.3f}, of the fastest epochs "
        f"{min(t_tr) / min(t_bare):.3f} "
        f"(per repeat: {', '.join(f'{q:.3f}' for q in ratios)}); peak memory trainer {mem['trainer']}, "
        f"bare {mem['bare']}"
    )

    if args.compile:  # torch.compile of the model against eager, after a compiling warm-up epoch
        compiled = row.trainer("loss")
        compiled._forward = speed.GuardedCompile(compiled.state.model)
        t_compile = timed(
            device, lambda: compiled.train_order(torch.randperm(n, generator=idx_gen).to(device), weights)
        )
        eager, comp = [], []
        for r in range(reps):
            order = torch.randperm(n, generator=idx_gen).to(device)
            for kind in ("eager", "compiled") if r % 2 == 0 else ("compiled", "eager"):
                t = trainer if kind == "eager" else compiled
                (eager if kind == "eager" else comp).append(
                    timed(device, lambda t=t, order=order: t.train_order(order, weights))
                )
        state = "fell back to eager" if compiled._forward.failed else "compiled"
        emit(
            f"  compile=true ({state}; first epoch with compilation {t_compile:.1f} s): compiled/eager time ratio "
            f"median {statistics.median(c / e for c, e in zip(comp, eager)):.3f}"
        )

    # DAS vs loss epochs (InfoBatch selection), per trained image, interleaved.
    eval_size = min(args.eval_size, args.reference)
    variants = {
        "loss": row.trainer("loss"),
        "das_whole": row.trainer("das"),
        f"das_eval{eval_size}": row.trainer("das", eval_size),
    }
    for t in variants.values():
        t.run_epoch()  # warm-up; the bank gets one observation
    per_img = {k: [] for k in variants}
    for r in range(reps):
        keys = list(variants) if r % 2 == 0 else list(reversed(variants))
        for k in keys:
            t = variants[k]
            spent = t.state.budget.spent
            reset_peak(device)
            secs = timed(device, t.run_epoch)
            per_img[k].append(secs / max(1, t.state.budget.spent - spent))
            mem[k] = peak_memory(device)
    loss_s = statistics.median(per_img["loss"])
    for k in variants:
        if k == "loss":
            continue
        rs = [a / b for a, b in zip(per_img[k], per_img["loss"])]
        emit(
            f"  {k}/loss seconds per trained image: median {statistics.median(rs):.3f}, of the fastest epochs "
            f"{min(per_img[k]) / min(per_img['loss']):.3f} "
            f"(per repeat: {', '.join(f'{q:.3f}' for q in rs)}); peak memory {mem[k]}"
        )

    # AlignPrune's own per-epoch work, timed apart, against a loss-scored training epoch of all n images.
    das = variants["das_whole"]
    fake_losses = torch.rand(n, device=device)
    order = torch.randperm(n, device=device)
    bank = [
        timed(
            device, lambda: (das.state.scorer.observe(order, fake_losses, das.state.epoch), das.state.scorer.scores())
        )
        for _ in range(reps)
    ]
    epoch_s = loss_s * n
    parts = [f"bank update + correlation {1e3 * statistics.median(bank):.1f} ms"]
    for label, trainer_k in (("whole", das), (f"eval_size={eval_size}", variants[f"das_eval{eval_size}"])):
        ref = statistics.median(
            timed(device, lambda trainer_k=trainer_k: trainer_k.evaluate("reference")) for _ in range(reps)
        )
        overhead = 100 * (ref + statistics.median(bank)) / epoch_s
        parts.append(
            f"reference pass ({label}, {trainer_k.data.eval_size('reference')} images) {1e3 * ref:.0f} ms "
            f"-> overhead {overhead:.1f}%"
        )
    emit(f"  AlignPrune per epoch vs a {epoch_s:.2f} s epoch of {n} images: " + "; ".join(parts))
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", nargs="+", default=["auto"], help="cpu, cuda, or auto (cpu, plus cuda if present)")
    parser.add_argument(
        "--model", default=None, help="override the row's model (default: small_cnn on CPU, resnet18_cifar on CUDA)"
    )
    parser.add_argument("--train", type=int, default=None, help="training images (default 3000 CPU, 40000 CUDA)")
    parser.add_argument("--reference", type=int, default=None, help="reference images (default 1000 CPU, 10000 CUDA)")
    parser.add_argument("--eval-size", type=int, default=None, help="reference.eval_size (default 250 CPU, 1000 CUDA)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timed epochs per variant")
    parser.add_argument("--compile", action="store_true", help="also time the trainer with torch.compile")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--data-dir", default=None, help="CIFAR-10 folder (npy or torchvision layout); else random")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = []
    for name in args.device:
        if name == "auto":
            devices += ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        elif name.startswith("cuda") and not torch.cuda.is_available():
            print(f"{name} requested but not available: skipped")
        else:
            devices.append(name)
    print(f"torch {torch.__version__}; ratios are medians of {args.repeats} interleaved repeats")
    for name in dict.fromkeys(devices):
        device = torch.device(name)
        cuda = device.type == "cuda"
        row_args = argparse.Namespace(**vars(args))
        row_args.train = args.train or (40_000 if cuda else 3_000)
        row_args.reference = args.reference or (10_000 if cuda else 1_000)
        row_args.eval_size = args.eval_size or (1_000 if cuda else 250)
        if cuda:
            speed.configure_backends(device)
        bench_row(row_args, device)


if __name__ == "__main__":
    main()
