"""The engine's constructors build exactly the scorer and policy of the matching conf/pruner/*.yaml."""

from __future__ import annotations

import pytest
import torch

from alignprune_exp.config.instantiate import instantiate
from alignprune_exp.plugin import PruningEngine

N = 500
PRESETS = {
    "infobatch_das": PruningEngine.alignprune,
    "infobatch": PruningEngine.infobatch,
    "seta": PruningEngine.seta,
    "seta_das": PruningEngine.seta_das,
    "random_dynamic": PruningEngine.random_dynamic,
}


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


@pytest.mark.parametrize("ratio", ["r30", "r70"])
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_python_defaults_equal_the_yaml_defaults(compose_cfg, name, ratio):
    cfg = compose_cfg([f"pruner={name}", "epochs=40", f"ratio={ratio}", "seed=3"])
    policy = instantiate(cfg.pruner.policy, num_samples=N, seed=int(cfg.seed))
    scorer = instantiate(cfg.pruner.scorer, num_samples=N)
    engine = PRESETS[name](N, epochs=int(cfg.epochs), ratio=float(cfg.ratio.value), seed=int(cfg.seed))
    assert type(engine.policy) is type(policy) and type(engine.scorer) is type(scorer)
    mine = {k: v for k, v in vars(engine.policy).items() if k != "generator"}
    assert mine == {k: v for k, v in vars(policy).items() if k != "generator"}
    assert torch.equal(engine.policy.generator.get_state(), policy.generator.get_state())
    assert _same(engine.scorer.state_dict(), scorer.state_dict())
    assert {k: v for k, v in vars(engine.scorer).items() if not k.startswith("_")} == {
        k: v for k, v in vars(scorer).items() if not k.startswith("_")
    }
