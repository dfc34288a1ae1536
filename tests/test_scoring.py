"""Scorers: das_scores against a per-row formula, the DAS memory bank, and the loss scorer."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from alignprune_exp.core.errors import ConfigError
from alignprune_exp.scoring import DASScorer, LossScorer, Scorer, das_scores


def reference_rho(x: np.ndarray, y: np.ndarray, rho: str) -> float:
    """Per-row formula in float64: np.corrcoef or hand-written cosine, 0.0 where undefined."""
    if len(x) < 3:
        return 0.0
    if rho == "cosine":
        nx, ny = np.linalg.norm(x), np.linalg.norm(y)
        return 0.0 if nx == 0 or ny == 0 else float(x @ y / (nx * ny))
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def random_case(n: int, t: int, seed: int, scale: float = 1.0, per_row_ref: bool = False):
    g = np.random.default_rng(seed)
    losses = scale * g.gamma(2.0, 1.0, size=(n, t))
    ref = scale * (np.linspace(2.0, 0.5, t) + 0.1 * g.standard_normal((n, t) if per_row_ref else t))
    mask = g.random((n, t)) < 0.7
    return losses, ref, mask


def expected(losses, ref, mask, rho):
    refs = np.broadcast_to(ref, losses.shape)
    return np.array([reference_rho(losses[i][mask[i]], refs[i][mask[i]], rho) for i in range(len(losses))])


def das_np(losses, ref, mask, rho, dtype=torch.float32):
    out = das_scores(torch.tensor(losses, dtype=dtype), torch.tensor(ref, dtype=dtype), torch.tensor(mask), rho)
    assert out.dtype == dtype and not torch.isnan(out).any() and not torch.isinf(out).any()
    return out.double().numpy()


@pytest.mark.parametrize("rho", ["pearson", "cosine"])
@pytest.mark.parametrize("per_row_ref", [False, True])
def test_das_scores_match_per_row_formula(rho, per_row_ref):
    losses, ref, mask = random_case(300, 12, seed=1, per_row_ref=per_row_ref)
    np.testing.assert_allclose(das_np(losses, ref, mask, rho), expected(losses, ref, mask, rho), atol=1e-5)


def test_das_scores_tiny_magnitude_and_float64():
    losses, ref, mask = random_case(200, 10, seed=2, scale=1e-4)
    want = expected(losses, ref, mask, "pearson")
    np.testing.assert_allclose(das_np(losses, ref, mask, "pearson"), want, atol=1e-5)
    np.testing.assert_allclose(das_np(losses, ref, mask, "pearson", torch.float64), want, atol=1e-12)
    # a loss 1e-3 plus a variation of relative size 1e-4 is still a real signal
    t = np.arange(8.0)
    tiny = (1e-3 * (1 + 1e-4 * t))[None]
    assert das_np(tiny, t, np.ones((1, 8), bool), "pearson")[0] == pytest.approx(1.0, abs=1e-4)


def test_das_scores_undefined_rows_are_exactly_zero():
    ref = torch.tensor([3.0, 2.0, 1.5, 1.0, 0.8])
    losses = torch.tensor(
        [
            [0.1, 0.1, 0.1, 0.1, 0.1],  # constant sample (rounding noise after centring)
            [5.0, 4.0, 3.0, 2.0, 1.0],  # too few observed entries (mask below)
            [0.0, 0.0, 0.0, 0.0, 0.0],  # zero vector
            [1.0, float("nan"), float("inf"), 0.5, 0.2],  # non-finite entries count as missing
        ]
    )
    mask = torch.tensor([[True] * 5, [True, True, False, False, False], [True] * 5, [True] * 5])
    for rho in ("pearson", "cosine"):
        out = das_scores(losses, ref, mask, rho)
        assert not torch.isnan(out).any()
        assert out[1].item() == 0.0 and out[2].item() == 0.0
    assert das_scores(losses, ref, mask)[0].item() == 0.0
    assert das_scores(losses, ref, mask)[3].item() == pytest.approx(
        np.corrcoef([1, 0.5, 0.2], [3, 1, 0.8])[0, 1], abs=1e-6
    )
    # a constant reference gives 0 for every row
    assert torch.equal(das_scores(losses, torch.full((5,), 0.7)), torch.zeros(4))
    # no mask = all observed
    assert das_scores(losses[:1] * torch.arange(5.0), ref).item() == pytest.approx(
        np.corrcoef(np.arange(5.0) * 0.1, ref.numpy())[0, 1], abs=1e-6
    )


def test_das_scores_rejects_unknown_rho():
    with pytest.raises(ConfigError, match="rho"):
        das_scores(torch.ones(2, 4), torch.ones(4), rho="spearman")


def feed(scorer: DASScorer, losses: torch.Tensor, ref: torch.Tensor, observed: torch.Tensor) -> None:
    """Run an epoch loop: observe the samples marked observed at each epoch, then the reference."""
    for e in range(losses.shape[1]):
        idx = observed[:, e].nonzero().squeeze(1)
        scorer.observe(idx, losses[idx, e], e)
        scorer.observe_reference(e, float(ref[e]))


def test_das_scorer_skips_pruned_epochs_and_uses_reference_at_observed_epochs():
    g = torch.Generator().manual_seed(0)
    n, epochs = 64, 10
    losses = torch.rand(n, epochs, generator=g) + 0.1
    ref = torch.linspace(2.5, 0.4, epochs) + 0.05 * torch.rand(epochs, generator=g)
    observed = torch.rand(n, epochs, generator=g) < 0.6
    scorer = DASScorer(n, window=25)
    feed(scorer, losses, ref, observed)
    want = expected(losses.double().numpy(), ref.double().numpy(), observed.numpy(), "pearson")
    np.testing.assert_allclose(scorer.scores().double().numpy(), want, atol=1e-5)
    loss, seen = scorer.last_losses()
    assert torch.equal(seen, observed.any(1))
    last_epoch = torch.where(observed, torch.arange(epochs), -1).amax(1)
    assert torch.equal(loss[seen], losses[seen, last_epoch[seen]])


def test_das_scorer_window_keeps_last_observations_and_float16():
    n, epochs, window = 32, 12, 5
    g = torch.Generator().manual_seed(3)
    losses = torch.rand(n, epochs, generator=g) + 0.5
    ref = torch.rand(epochs, generator=g) + 1.0
    observed = torch.rand(n, epochs, generator=g) < 0.8
    # keep only each row's last `window` observed epochs
    rank_from_end = observed.flip(1).cumsum(1).flip(1)
    kept = observed & (rank_from_end <= window)
    want = expected(losses.double().numpy(), ref.double().numpy(), kept.numpy(), "pearson")
    for dtype, tol in (("float32", 1e-5), ("float16", 5e-3)):
        scorer = DASScorer(n, window=window, dtype=dtype)
        feed(scorer, losses, ref, observed)
        np.testing.assert_allclose(scorer.scores().double().numpy(), want, atol=tol)
        bank, bank_epochs = scorer.trajectories()
        assert (bank_epochs >= 0).sum(1).tolist() == kept.sum(1).tolist()


def test_das_scorer_aligned_antialigned_and_ranking():
    epochs = 20
    ref = 2.0 * torch.exp(-torch.arange(epochs) / 6.0) + 0.3
    noise = 0.3 * torch.randn(1, epochs, generator=torch.Generator().manual_seed(5))
    losses = torch.stack(
        [
            0.5 * ref + 0.1,  # perfectly aligned
            -0.5 * ref + 3.0,  # anti-aligned
            1.5 * torch.exp(-torch.arange(epochs) / 4.0) + 0.05,  # clean-like: decreasing
            torch.linspace(0.5, 3.0, epochs),  # noisy-like: increasing
            (1.5 + noise[0]).abs(),  # noisy-like: erratic
        ]
    )
    scorer = DASScorer(5, window=25)
    feed(scorer, losses, ref, torch.ones(5, epochs, dtype=torch.bool))
    s = scorer.scores()
    assert s[0].item() == pytest.approx(1.0, abs=1e-6)
    assert s[1].item() == pytest.approx(-1.0, abs=1e-6)
    assert s[2] > 0.9 and s[3] < -0.5 and s[2] > s[4] > s[3]
    assert abs(s[4].item()) < 0.6


def test_das_scorer_early_epochs_are_neutral_and_same_epoch_repeat_overwrites():
    scorer = DASScorer(4, window=3, cold_start="neutral")
    assert torch.equal(scorer.scores(), torch.zeros(4))
    for e, ref in enumerate([3.0, 2.0]):
        scorer.observe(torch.arange(4), torch.tensor([3.0, 2.0, 1.0, 0.5]) / (e + 1), e)
        scorer.observe_reference(e, ref)
    assert torch.equal(scorer.scores(), torch.zeros(4))  # 2 observations < min_observations
    # index 0 twice in one call: the last loss wins; a second call in the same epoch overwrites too
    scorer.observe(torch.tensor([0, 1, 0]), torch.tensor([9.0, 0.1, 0.2]), 2)
    scorer.observe(torch.tensor([1]), torch.tensor([0.3]), 2)
    scorer.observe_reference(2, 1.0)
    loss, _ = scorer.last_losses()
    assert loss[:2].tolist() == pytest.approx([0.2, 0.3])
    assert scorer.state_dict()["count"].tolist() == [3, 3, 2, 2]
    assert scorer.scores()[0].item() == pytest.approx(np.corrcoef([3.0, 1.5, 0.2], [3, 2, 1])[0, 1], abs=1e-6)


def test_das_cold_start_ranks_by_last_loss_until_half_the_samples_have_a_trajectory():
    scorer = DASScorer(4, window=3)  # cold_start=loss, fraction 0.5
    assert torch.equal(scorer.scores(), torch.zeros(4)) and scorer.cold  # nothing seen: all equal, full data
    for e in range(2):
        scorer.observe(torch.arange(4), torch.tensor([3.0, 2.0, 1.0, 0.5]) / (e + 1), e)
        scorer.observe_reference(e, 3.0 - e)
    assert scorer.scores().tolist() == [1.5, 1.0, 0.5, 0.25]  # InfoBatch's ranking: the last loss
    scorer.observe(torch.tensor([0]), torch.tensor([0.2]), 2)  # 1 of 4 samples has 3 points: still cold
    scorer.observe_reference(2, 1.0)
    assert scorer.ready_fraction() == 0.25 and scorer.scores().tolist() == pytest.approx([0.2, 1.0, 0.5, 0.25])
    scorer.observe(torch.tensor([1]), torch.tensor([0.3]), 2)  # 2 of 4: DAS takes over, short ones neutral
    das = scorer.scores()
    assert not scorer.cold and das[2:].tolist() == [0.0, 0.0]
    assert das[0].item() == pytest.approx(np.corrcoef([3.0, 1.5, 0.2], [3, 2, 1])[0, 1], abs=1e-6)
    restored = DASScorer(4, window=3)
    restored.load_state_dict(scorer.state_dict())
    assert torch.equal(restored.scores(), das)
    with pytest.raises(ConfigError, match="cold_start"):
        DASScorer(4, cold_start="never")


def test_das_scorer_state_dict_round_trip_is_exact():
    n, epochs = 40, 9
    g = torch.Generator().manual_seed(7)
    losses, ref = torch.rand(n, epochs, generator=g), torch.rand(epochs, generator=g)
    observed = torch.rand(n, epochs, generator=g) < 0.7
    a = DASScorer(n, window=4, dtype="float16")
    feed(a, losses[:, :6], ref[:6], observed[:, :6])
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = DASScorer(n, window=4, dtype="float16")
    b.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(a.scores(), b.scores())
    for s in (a, b):
        idx = observed[:, 6].nonzero().squeeze(1)
        s.observe(idx, losses[idx, 6], 6)
        s.observe_reference(6, float(ref[6]))
    assert torch.equal(a.scores(), b.scores())
    with pytest.raises(ValueError, match="window"):
        DASScorer(n, window=5, dtype="float16").load_state_dict(a.state_dict())


def test_das_scorer_config_errors():
    with pytest.raises(ConfigError, match="window"):
        DASScorer(10, window=1)
    with pytest.raises(ConfigError, match="rho"):
        DASScorer(10, rho="kendall")
    with pytest.raises(ConfigError, match="dtype"):
        DASScorer(10, dtype="bfloat16")
    assert DASScorer.needs_reference and not LossScorer.needs_reference


def test_loss_scorer_overwrites_and_keeps_stale():
    scorer = LossScorer(5, init_value=3.0)
    assert isinstance(scorer, Scorer)
    assert torch.equal(scorer.scores(), torch.full((5,), 3.0))
    scorer.observe(torch.tensor([0, 2]), torch.tensor([0.5, 1.5]), 0)
    scorer.observe(torch.tensor([2, 4]), torch.tensor([0.7, 0.1]), 1)
    assert scorer.scores().tolist() == pytest.approx([0.5, 3.0, 0.7, 3.0, 0.1])
    loss, seen = scorer.last_losses()
    assert torch.equal(loss, scorer.scores()) and seen.tolist() == [True, False, True, False, True]
    clone = LossScorer(5)
    clone.load_state_dict(scorer.state_dict())
    assert torch.equal(clone.scores(), scorer.scores())
    assert torch.equal(clone.last_losses()[1], seen)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_das_scorer_on_cuda_matches_cpu():
    n, epochs = 1000, 8
    g = torch.Generator().manual_seed(11)
    losses, ref = torch.rand(n, epochs, generator=g), torch.rand(epochs, generator=g)
    observed = torch.rand(n, epochs, generator=g) < 0.8
    cpu, gpu = DASScorer(n, window=5), DASScorer(n, window=5).to("cuda")
    for e in range(epochs):
        idx = observed[:, e].nonzero().squeeze(1)
        cpu.observe(idx, losses[idx, e], e)
        gpu.observe(idx.cuda(), losses[idx, e].cuda(), e)
        cpu.observe_reference(e, float(ref[e]))
        gpu.observe_reference(e, float(ref[e]))
    assert gpu.scores().device.type == "cuda"
    torch.testing.assert_close(gpu.scores().cpu(), cpu.scores(), atol=1e-5, rtol=0)
