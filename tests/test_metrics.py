"""Metrics: AUROC against a brute-force pairwise count, noise direction, subset shares."""

from __future__ import annotations

import math

import pytest
import torch

from alignprune_exp.train.metrics import (
    auroc,
    kept_noisy_fraction,
    loss_noise_auroc,
    noise_auroc,
    weighted_noisy_share,
)


def brute_force_auroc(scores: torch.Tensor, pos: torch.Tensor) -> float:
    diff = scores[pos][:, None] - scores[~pos][None, :]
    return ((diff > 0).double() + 0.5 * (diff == 0).double()).mean().item()


def test_auroc_matches_pairwise_count_with_ties():
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        scores = torch.randint(0, 8, (300,), generator=g).float()  # many ties
        pos = torch.rand(300, generator=g) < 0.3
        assert auroc(scores, pos) == pytest.approx(brute_force_auroc(scores, pos), abs=1e-12)
    scores = torch.randn(500, generator=g)
    pos = torch.rand(500, generator=g) < 0.5
    assert auroc(scores, pos) == pytest.approx(brute_force_auroc(scores, pos), abs=1e-12)
    mask = torch.rand(500, generator=g) < 0.5
    assert auroc(scores, pos, mask) == pytest.approx(brute_force_auroc(scores[mask], pos[mask]), abs=1e-12)


def test_auroc_edge_cases():
    pos = torch.tensor([False, False, True, True])
    assert auroc(torch.tensor([0.1, 0.2, 0.8, 0.9]), pos) == 1.0
    assert auroc(torch.tensor([0.9, 0.8, 0.2, 0.1]), pos) == 0.0
    assert auroc(torch.ones(4), pos) == 0.5
    assert math.isnan(auroc(torch.rand(4), torch.zeros(4, dtype=torch.bool)))
    # NaN scores (a diverging run, which the trainer then stops with its own message): undefined, not a crash
    assert math.isnan(auroc(torch.tensor([0.0, float("nan")]), torch.tensor([True, False])))


def test_noise_auroc_direction():
    is_noisy = torch.tensor([True, True, False, False, False])
    das = torch.tensor([-0.8, -0.2, 0.5, 0.9, 0.7])  # noisy samples score low -> pruned first
    assert noise_auroc(das, is_noisy) == 1.0
    losses = torch.tensor([2.5, 3.0, 0.2, 0.1, 0.4])  # noisy samples have high loss
    assert loss_noise_auroc(losses, is_noisy) == 1.0
    assert noise_auroc(losses, is_noisy) == 0.0  # a loss score keeps noisy samples


def test_kept_and_weighted_noisy_share():
    is_noisy = torch.tensor([True, False, True, False, False, True])
    weights = torch.tensor([2.0, 1.0, 1.0, 2.0, 1.0, 1.0])
    indices = torch.tensor([0, 1, 3, 5])
    assert kept_noisy_fraction(indices, is_noisy) == pytest.approx(0.5)
    # noisy weight 2 + 1 = 3 out of 2 + 1 + 2 + 1 = 6
    assert weighted_noisy_share(indices, weights, is_noisy) == pytest.approx(0.5)
    assert weighted_noisy_share(torch.tensor([0, 1]), weights, is_noisy) == pytest.approx(2 / 3)
    assert math.isnan(kept_noisy_fraction(torch.tensor([], dtype=torch.int64), is_noisy))
