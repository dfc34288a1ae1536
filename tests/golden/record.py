"""Golden records of short digits runs of every pruner: per-epoch records (``time/*`` aside) and summaries.

``python -m tests.golden.record`` rewrites ``tests/golden/digits_runs.json`` (only when behaviour is meant to
change, with the reason in the commit); ``tests/test_golden.py`` re-runs the same cases and compares exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).with_name("digits_runs.json")


def machine_fixture() -> Path:
    """This kind of machine's own fixture: CPU float kernels differ by instruction set, so records are exact only
    per kind (``alignprune_exp.runs.machine``); ``digits_runs.json`` is the kind the refactor was proved on."""
    from alignprune_exp.runs.machine import machine_fingerprint

    key = hashlib.sha256(json.dumps(machine_fingerprint(), sort_keys=True).encode()).hexdigest()[:12]
    return FIXTURE.with_name(f"digits_runs.{key}.json")


BASE = [
    "dataset=digits",
    "noise=sym0.5",
    "model=mlp",
    "optimizer=sgd",
    "optimizer.lr=0.05",
    "scheduler=onecycle",
    "epochs=5",
    "batch_size=128",
    "device=cpu",
    "progress_bar=false",
    "ratio=r30",
    "num_threads=1",
    "warmup.epochs=2",
    "logger=csv",
]
DYNAMIC = [
    "full",
    "random_dynamic",
    "infobatch",
    "infobatch_das",
    "infobatch_das_expanding",
    "seta",
    "seta_das",
    "ies",
    "divbs",
]
STATIC = [
    "random_static",
    "smalll",
    "margin",
    "forgetting",
    "grand",
    "el2n",
    "moderate",
    "ssp",
    "prune4rel",
    "dyn_unc",
    "dual",
]
CASES = {
    **{p: [f"pruner={p}"] for p in DYNAMIC + STATIC},
    "infobatch_das+das_window3": ["pruner=infobatch_das", "pruner.scorer.window=3"],
    "infobatch+sop_plus": ["pruner=infobatch", "loss=sop_plus"],
    "infobatch_das+pseudo_clean_smalll": ["pruner=infobatch_das", "reference=pseudo_clean_smalll"],
}
# Keys that name the machine, the moment, the folder (run_id hashes results_dir) or the code, not the behaviour.
VOLATILE = {"run_id", "timestamp", "total_time_s", "wall_time_s", "run_dir", "code_version", "overrides"}


def _plain(value):
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def run_case(overrides: list[str], workdir: Path) -> dict:
    """One run through the public entry point; returns its epoch records and summary without volatile keys."""
    from alignprune_exp.pipeline.session import run

    GlobalHydra.instance().clear()
    results = workdir / "results"
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*BASE, *overrides, f"results_dir={results}"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    choices = {k: v for k, v in cfg.hydra.runtime.choices.items() if not k.startswith("hydra")}
    with open_dict(cfg):
        del cfg["hydra"]
    run_dir = workdir / "run"
    threads = torch.get_num_threads()
    try:
        summary = run(cfg, run_dir, choices, overrides=",".join(overrides))
    finally:
        torch.set_num_threads(threads)
    epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    epochs = [{k: v for k, v in rec.items() if not k.startswith("time/")} for rec in epochs]
    summary = {k: v for k, v in summary.items() if k not in VOLATILE}
    return _plain({"epochs": epochs, "summary": summary})


def record_all(tmp: Path, names=None) -> dict:
    out = {}
    for name in names or CASES:
        out[name] = run_case(CASES[name], tmp / name.replace("+", "_"))
    return out


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        records = record_all(Path(tmp), [a for a in sys.argv[1:] if a != "--this-machine"] or None)
    out = machine_fixture() if "--this-machine" in sys.argv else FIXTURE
    out.write_text(json.dumps(records, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(records)} cases to {out}")
