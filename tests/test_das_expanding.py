"""DASScorer(window=None): an expanding window over every observation since the first epoch."""

from __future__ import annotations

import pytest
import torch

from alignprune_exp.config.instantiate import instantiate
from alignprune_exp.scoring.das import DASScorer, das_scores


def feed(scorer, losses, observed):
    """losses [n, T]; observed [n, T] bool; reference mean loss = epoch-dependent curve."""
    ref = torch.linspace(2.0, 0.1, losses.shape[1]) ** 2
    for t in range(losses.shape[1]):
        idx = observed[:, t].nonzero().squeeze(1)
        scorer.observe(idx, losses[idx, t], t)
        scorer.observe_reference(t, float(ref[t]))
    return ref


def test_expanding_window_scores_whole_trajectories():
    g = torch.Generator().manual_seed(0)
    n, epochs = 64, 40
    losses = torch.rand(n, epochs, generator=g) * 3
    observed = torch.rand(n, epochs, generator=g) > 0.3
    scorer = DASScorer(num_samples=n, window=None)
    ref = feed(scorer, losses, observed)
    assert scorer.window is None and scorer.trajectories()[0].shape[1] >= observed.sum(1).max()
    expected = das_scores(losses, ref, observed)
    assert torch.allclose(scorer.scores(), expected, atol=1e-6)
    # a fixed window of 5 keeps only the last five observations: different scores
    short = DASScorer(num_samples=n, window=5)
    feed(short, losses, observed)
    assert not torch.allclose(short.scores(), expected, atol=1e-3)


def test_expanding_window_state_round_trip():
    n = 10
    losses, observed = torch.rand(n, 20), torch.ones(n, 20, dtype=torch.bool)
    a = DASScorer(num_samples=n, window=None)
    feed(a, losses, observed)
    b = DASScorer(num_samples=n, window=None)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.scores(), b.scores())
    with pytest.raises(ValueError, match="window"):
        DASScorer(num_samples=n, window=25).load_state_dict(a.state_dict())


def test_expanding_pruner_config_builds(compose_cfg):
    cfg = compose_cfg(["pruner=infobatch_das_expanding"])
    scorer = instantiate(cfg.pruner.scorer, num_samples=5)
    assert isinstance(scorer, DASScorer) and scorer.window is None and scorer.min_observations == 3
