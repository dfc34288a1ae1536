"""Resuming a run of 3 ranks reproduces, bit for bit, the run never interrupted.

With 3 or more ranks the order in which a gradient all-reduce sums an element matters (with 2, a + b = b + a),
and DDP's default all-reduce sums in an order set by the element's place in its bucket, a layout DDP
rebuilds after the first step of every process: a resumed run's first step rounded differently (measured:
``train/weighted_loss`` 3.0207105592 vs 3.0207105521 after 40 epochs). ``distributed.rank_ordered_mean`` sums in
rank order whatever the layout.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT, TINY_DIGITS

RUN = [
    *[a for a in TINY_DIGITS if not a.startswith(("epochs=", "batch_size="))],
    "pruner=infobatch_das",
    "pruner.scorer.window=3",
    "epochs=4",
    "batch_size=96",  # 32 per rank
    "seed=3",
    "num_threads=1",
    "eval_batch_size=100",
    "snapshots=false",
    "checkpoint_every=1",
    "resume=auto",
]


def _torchrun3(args: list[str], env: dict) -> tuple[int, str]:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=3",
        str(ROOT / "tests" / "faults.py"),  # the same script every time: nothing is patched without a kill point
        *args,
    ]
    proc = subprocess.run(
        cmd, env={**env, "OMP_NUM_THREADS": "1"}, cwd=ROOT, capture_output=True, text=True, timeout=400
    )
    return proc.returncode, proc.stdout + proc.stderr


def _records(results) -> list[dict]:
    (run,) = [d for d in (results / "runs").glob("*/*") if (d / "summary.json").exists()]
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in recs]


@pytest.mark.slow
def test_three_ranks_stopped_and_resumed_equal_the_uninterrupted_run(cli_env, tmp_path):
    rc, out = _torchrun3([*RUN, f"results_dir={tmp_path / 'whole'}"], cli_env)
    assert rc == 0, out[-3000:]
    whole = _records(tmp_path / "whole")
    args = [*RUN, f"results_dir={tmp_path / 'again'}"]
    rc, out = _torchrun3(args, {**cli_env, "ALIGNPRUNE_TEST_KILL_AT": "train_batch:15:TERM"})
    assert rc != 0 and "stopped: stopped by SIGTERM at epoch" in out, out[-3000:]
    rc, out = _torchrun3(args, cli_env)
    assert rc == 0 and "resumed from" in out, out[-3000:]
    resumed = _records(tmp_path / "again")
    assert len(whole) == len(resumed) >= 3
    for a, b in zip(whole, resumed):
        assert a == b, {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)}


def _first_step_after_restart(rank: int, world: int, port: int, out: str) -> None:
    """One rank: 3 DDP steps, then the 4th step once continued and once by a fresh DDP from the 3rd step's state."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from alignprune_exp.core import distributed
    from alignprune_exp.models import build_model

    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    dist = distributed.Dist(rank, world)
    torch.manual_seed(0)
    init = build_model("mlp", 10, input_shape=(1, 8, 8)).state_dict()
    g = torch.Generator().manual_seed(1)
    xs, ys = torch.randn(4, 32 * world, 1, 8, 8, generator=g), torch.randint(0, 10, (4, 32 * world), generator=g)

    def ddp(state):
        model = build_model("mlp", 10, input_shape=(1, 8, 8))
        model.load_state_dict(state)
        return model, dist.wrap(model, torch.device("cpu"))

    def step(net, i):
        lo, hi = dist.part_bounds(32 * world)
        net.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(xs[i, lo:hi]), ys[i, lo:hi]).backward()
        with torch.no_grad():
            for p in net.parameters():
                p -= 0.1 * p.grad

    model, net = ddp(init)
    for i in range(3):
        step(net, i)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    step(net, 3)
    fresh, fresh_net = ddp(saved)
    step(fresh_net, 3)
    same = all(torch.equal(v, fresh.state_dict()[k]) for k, v in model.state_dict().items())
    if rank == 0:
        with open(out, "w") as f:
            json.dump({"same": same}, f)
    torch.distributed.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("world", [2, 3])
def test_a_fresh_ddp_steps_as_the_continued_one(tmp_path, world):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "same.json"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_first_step_after_restart, args=(r, world, port, str(out))) for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * world
    assert json.loads(out.read_text()) == {"same": True}
