"""Training throughput of a 2-rank data-parallel run against a 1-rank run of the same config, one invocation.

Each rank is a spawned process with ONE torch thread (gloo on CPU; with ``device=cuda`` and two GPUs, NCCL,
one GPU per rank). Both runs use the trainer built from the Hydra config exactly as ``train.py`` does
(``build_trainer``); images/s = training forward passes / training time (``time/train_s``: selection,
training and scoring, evaluation excluded) over the epochs after the first, measured on rank 0 (ranks
synchronise every step, so rank 0's clock is the run's). The ratio 2-rank / 1-rank is the speed-up; 2.0
would be perfect scaling. On a shared machine the wall-clock ratio also measures the other load, so the
script also prints the CPU time per 1000 images summed over ranks (process time over epochs 2..last, their
evaluations included): equal in both runs means no parallel overhead.

    python scripts/bench_ddp.py                                   # digits, small_cnn, 4 epochs, CPU
    python scripts/bench_ddp.py model.width=64 epochs=6           # any config override
    python scripts/bench_ddp.py dataset=cifar10 data_dir=../shared/data train_subset=5000 model=small_cnn
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import torch.multiprocessing as mp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

DEFAULTS = [
    "dataset=digits",
    "noise=clean",
    "model=small_cnn",
    "model.width=32",
    "pruner=full",
    "ratio=r0",
    "optimizer=sgd",
    "scheduler=constant",
    "epochs=4",
    "batch_size=128",
    "device=cpu",
    "progress_bar=false",
    "snapshots=false",
    "num_threads=1",
]


def _worker(rank: int, world: int, port: int, overrides: list[str], out: str) -> None:
    import torch
    from hydra import compose, initialize_config_dir

    from alignprune_exp.cli import CONF_DIR
    from alignprune_exp.core import distributed
    from alignprune_exp.pipeline.build import build_trainer

    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        WANDB_MODE="disabled",
    )
    torch.set_num_threads(1)
    distributed.init(timeout_s=300)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[*DEFAULTS, f"results_dir={out}", *overrides])
    trainer, _ = build_trainer(cfg)
    recs: list[dict] = []
    cpu: list[float] = []

    def record(rec, _extras):
        recs.append(rec)
        cpu.append(time.process_time())

    trainer.callbacks.append(record)
    trainer.fit()
    Path(out, f"cpu{world}_{rank}.json").write_text(json.dumps(cpu[-1] - cpu[0]))
    distributed.current().gather_objects(None)
    if rank == 0:
        fwd = [r["fwd/train"] for r in recs]
        images = fwd[-1] - fwd[0]
        seconds = sum(r["time/train_s"] for r in recs[1:])
        cpu_s = sum(json.loads(Path(out, f"cpu{world}_{r}.json").read_text()) for r in range(world))
        Path(out, f"world{world}.json").write_text(
            json.dumps({"images": images, "seconds": seconds, "epochs": len(recs), "cpu_s": cpu_s})
        )
    distributed.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(world: int, overrides: list[str], out: str) -> dict:
    mp.spawn(_worker, args=(world, _free_port(), overrides, out), nprocs=world, join=True)
    return json.loads(Path(out, f"world{world}.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides applied to both runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        res = {w: measure(w, args.overrides, out) for w in (1, 2)}
    rate = {w: r["images"] / r["seconds"] for w, r in res.items()}
    print(f"config: {' '.join([*DEFAULTS, *args.overrides])}")
    for w in (1, 2):
        print(
            f"{w} rank(s), 1 thread each: {res[w]['images']} images in {res[w]['seconds']:.2f} s "
            f"(epochs 2-{res[w]['epochs']}) = {rate[w]:.0f} images/s; "
            f"{1000 * res[w]['cpu_s'] / res[w]['images']:.2f} CPU s per 1000 images (all ranks)"
        )
    print(f"2-rank / 1-rank throughput: {rate[2] / rate[1]:.2f}x (os.cpu_count()={os.cpu_count()})")


if __name__ == "__main__":
    main()
