"""Training dynamics of the right length (Dyn-Unc, DUAL), the DAS cold start and the static warm-up's lr ramp."""

from __future__ import annotations

import json
import logging
import statistics

import pytest
import torch

from alignprune_exp.pipeline.build import build_policy
from alignprune_exp.pipeline.session import run
from alignprune_exp.pipeline.warmup import protocol_config, warmup_schedule
from alignprune_exp.pipeline.warmup_cache import cache_key
from alignprune_exp.pruning.static import DUAL, DynUnc
from tests.conftest import TINY_DIGITS
from tests.test_static import make_record
from tests.test_warmup_cache import C, N, tiny_data

pytestmark = pytest.mark.usefixtures("one_thread")

# [E=5, n=2]: a hand-made given-label probability trajectory
PROBS = torch.tensor([[0.1, 0.9], [0.3, 0.8], [0.5, 0.9], [0.5, 0.2], [0.9, 0.6]])


def window_mean(column, j, f):
    return statistics.mean(f(column[k : k + j]) for k in range(len(column) - j + 1))


def test_dyn_unc_scores_every_window_of_the_whole_run_and_dual_only_its_first_t_epochs():
    record = make_record(n=2, c=2, epochs=5, probs=PROBS)
    cols = [PROBS[:, i].tolist() for i in range(2)]
    dyn = DynUnc(2, keep_fraction=0.5, window=3)  # epochs=null: all 5 epochs, 3 windows
    assert dyn.score(record).tolist() == pytest.approx([window_mean(c, 3, statistics.stdev) for c in cols], abs=1e-6)
    assert dyn.score(record)[0].item() == pytest.approx((0.2 + 0.1154701 + 0.2309401) / 3, abs=1e-6)
    dual = DUAL(2, keep_fraction=0.5, window=2, epochs=3, beta_sampling=False)  # T = 3: windows (0,1), (1,2)
    expected = [window_mean(c[:3], 2, lambda w: statistics.stdev(w) * (1 - statistics.mean(w))) for c in cols]
    assert dual.score(record).tolist() == pytest.approx(expected, abs=1e-6)
    later = make_record(n=2, c=2, epochs=5, probs=torch.cat([PROBS[:3], PROBS[3:].flip(1)]))
    assert torch.equal(dual.score(later), dual.score(record))  # epochs after T never enter DUAL
    assert not torch.equal(dyn.score(later), dyn.score(record))  # but do enter Dyn-Unc
    assert (dyn.warmup_protocol, DynUnc(2, 0.5, trajectory="warmup").warmup_protocol) == ("dynamics", "scoring")


def test_paper_protocol_defaults(compose_cfg):
    cfg = compose_cfg(["pruner=dual"])
    assert (cfg.pruner.policy.epochs, cfg.pruner.policy.window, cfg.pruner.policy.beta_sampling) == (30, 10, True)
    assert compose_cfg(["pruner=dyn_unc"]).pruner.policy.epochs is None
    dyn = protocol_config(cfg, "dynamics")
    assert (dyn.warmup.epochs, dyn.warmup.scheduler) == (200, "run") and cfg.warmup.epochs == 30  # CIFAR-100N
    assert compose_cfg(["pruner=prune4rel"]).pruner.policy.view == "strong"
    assert compose_cfg(["pruner=infobatch_das"]).pruner.scorer.cold_start == "loss"


def test_one_cached_full_length_run_serves_both_methods_and_every_ratio(compose_cfg, caplog, tmp_path):
    caplog.set_level(logging.INFO, logger="alignprune")
    info = {"n_train": N, "num_classes": C, "input_shape": (1, 8, 8)}
    base = [*TINY_DIGITS, "epochs=4", "warmup.epochs=2", f"warmup.cache_dir={tmp_path / 'cache'}"]
    chosen = []
    for pruner, ratio in [("dyn_unc", "r30"), ("dual", "r50"), ("dual", "r70")]:
        cfg = compose_cfg([*base, f"pruner={pruner}", f"ratio={ratio}", "pruner.policy.epochs=3"])
        policy = build_policy(cfg, tiny_data(), info, torch.device("cpu"))
        chosen.append(len(policy.subset))
    log = [r.getMessage() for r in caplog.records if r.name == "alignprune"]
    assert sum("warm-up cache miss" in m for m in log) == 1 and sum("warm-up cache hit" in m for m in log) == 2
    assert chosen == [round(0.7 * N), round(0.5 * N), round(0.3 * N)]
    assert any("warm-up: 4 epochs" in m and "lr schedule run" in m for m in log)  # the run's length and schedule
    scoring = compose_cfg([*base, "pruner=smalll"])
    build_policy(scoring, tiny_data(), info, torch.device("cpu"))
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2  # the short scoring warm-up is another file


def test_static_warmup_ramps_up_by_default_and_its_schedule_is_in_the_cache_key(compose_cfg):
    cfg = compose_cfg(TINY_DIGITS)
    ramp = warmup_schedule(cfg)
    assert [ramp.factor(p) for p in (0.0, 0.15, 0.3, 0.7, 1.0)] == pytest.approx([0.04, 0.52, 1.0, 1.0, 1.0])
    assert warmup_schedule(compose_cfg([*TINY_DIGITS, "warmup.scheduler=constant"])).factor(0.0) == 1.0

    def key(*extra):
        return cache_key(
            compose_cfg([*TINY_DIGITS, *extra]),
            tiny_data(),
            num_classes=C,
            input_shape=(1, 8, 8),
            seed=0,
            amp=False,
            cache_key_extra={},
        )

    keys = {key(), key("warmup.scheduler=constant"), key("warmup.ramp_fraction=0.1"), key("strong_view=jitter")}
    assert len(keys) == 4


def test_full_training_run_saves_its_probability_trajectory(compose_cfg, tmp_path):
    cfg = compose_cfg([*TINY_DIGITS, "pruner=full", "ratio=r0", "epochs=3", "snapshots=false", "num_threads=1"])
    summary = run(cfg, tmp_path / "run", {"pruner": "full"})
    dyn = torch.load(tmp_path / "run" / "dynamics.pt")
    assert dyn["probs"].dtype == torch.float16 and dyn["probs"].shape == (3, summary["n_train"])
    assert ((dyn["probs"] > 0) & (dyn["probs"] < 1)).all()  # every sample seen every epoch


@pytest.mark.parametrize("cold_start", ["loss", "neutral"])
def test_das_cold_start_prunes_a_short_run_at_70_percent(compose_cfg, tmp_path, cold_start):
    """Clothing-1M-like: 10 epochs, N = 5, InfoBatch r = 0.75, 70% pruning (a budget of 3 full epochs)."""
    cfg = compose_cfg(
        [
            *TINY_DIGITS,
            "pruner=infobatch_das",
            "ratio=r70",
            "epochs=10",
            "pruner.scorer.window=5",
            "pruner.policy.prune_prob=0.75",
            f"pruner.scorer.cold_start={cold_start}",
            "snapshots=false",
            "num_threads=1",
        ]
    )
    run(cfg, tmp_path / "run", {"pruner": "infobatch_das"})
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    pruned = [1.0 - json.loads(line)["prune/selected_fraction"] for line in lines]
    if cold_start == "loss":
        assert pruned[0] == 0.0  # nothing observed yet: all scores equal
        assert sum(p > 0.1 for p in pruned) >= 0.6 * len(pruned) and len(pruned) >= 4
    else:  # DAS 0 everywhere: 3 full epochs, budget gone
        assert pruned == [0.0, 0.0, 0.0]
