"""SOP+'s / Prune4ReL's strong view: AutoAugment (CIFAR-10 policy, one per image) + Cutout, on uint8 tensors."""

from __future__ import annotations

import pytest
import torch

from alignprune_exp.core.errors import ConfigError
from alignprune_exp.data.strong_augment import AutoAugmentView, JitterView
from alignprune_exp.pipeline.data import strong_augment_for
from alignprune_exp.pruning.static import Prune4ReL
from tests.test_static import make_record

MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)


def images(b=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, 3, 32, 32, generator=g) * 255).to(torch.uint8)


def test_autoaugment_view_shape_range_determinism_and_change():
    x = images()
    aug = AutoAugmentView(MEAN, STD, crop_padding=0, hflip=False, cutout=0)
    a = aug(x, generator=torch.Generator().manual_seed(3))
    b = aug(x, generator=torch.Generator().manual_seed(3))
    c = aug(x, generator=torch.Generator().manual_seed(4))
    assert a.shape == x.shape and a.dtype == torch.float32 and torch.equal(a, b) and not torch.equal(a, c)
    lo = ((0 - torch.tensor(MEAN)) / torch.tensor(STD)).min().item()
    hi = ((1 - torch.tensor(MEAN)) / torch.tensor(STD)).max().item()
    assert lo - 1e-5 <= a.min().item() and a.max().item() <= hi + 1e-5  # normalised uint8 range
    changed = (a != aug.normalize(x)).flatten(1).any(1)
    assert changed.float().mean() > 0.5  # most images drew an op that applied
    assert torch.equal(aug(x, train=False), aug.normalize(x))


def test_each_image_draws_its_own_policy():
    x = images(1).expand(64, -1, -1, -1).contiguous()  # 64 copies of one image
    aug = AutoAugmentView(MEAN, STD, crop_padding=0, hflip=False, cutout=0)
    out = aug.autoaugment(x, torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == x.shape
    distinct = len({bytes(img.flatten().tolist()) for img in out})
    assert distinct >= 16  # one batch policy would give <= 4 variants


def test_cutout_and_crop_flip_come_with_it():
    x = torch.full((8, 3, 32, 32), 200, dtype=torch.uint8)
    aug = AutoAugmentView(MEAN, STD, crop_padding=4, hflip=True, cutout=16)
    out = aug(x, generator=torch.Generator().manual_seed(0))
    holes = (out == 0).all(1).flatten(1).sum(1)
    assert holes.min() >= 8 * 8 and holes.max() <= 16 * 16  # one clipped 16x16 square per image


def test_strong_view_option(compose_cfg):
    class Images:
        mean, std = MEAN, STD

    assert isinstance(strong_augment_for(compose_cfg(["loss=sop_plus"]), Images), AutoAugmentView)
    assert isinstance(strong_augment_for(compose_cfg(["strong_view=jitter"]), Images), JitterView)
    with pytest.raises(ConfigError, match="strong_view"):
        strong_augment_for(compose_cfg(["strong_view=randaugment"]), Images)


def test_prune4rel_scores_the_strong_view_unless_told_weak():
    # weak view: two tight pairs (0,1) and (2,3); strong view: 0 and 1 apart, (2,3) together
    weak = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.01, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.01]])
    strong = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    logits = torch.tensor([[3.0, 0.0], [2.0, 0.0], [1.0, 0.0], [0.5, 0.0]])
    record = make_record(
        n=4,
        c=2,
        d=3,
        features=weak,
        logits=logits,
        labels=torch.zeros(4, dtype=torch.long),
        logits_strong=logits,
        features_strong=strong,
    )
    pick = {
        view: Prune4ReL(4, keep_fraction=0.5, class_balanced=False, tau=0.9, view=view).choose(record)
        for view in ("strong", "weak")
    }
    assert sorted(pick["weak"].tolist()) == [0, 2]  # neighbour of 0 is covered: next pair
    assert sorted(pick["strong"].tolist()) == [0, 1]  # no neighbours: the two most confident
    no_strong = make_record(n=4, c=2, d=3, features=weak, logits=logits, labels=torch.zeros(4, dtype=torch.long))
    assert torch.equal(Prune4ReL(4, 0.5, class_balanced=False, tau=0.9).choose(no_strong), pick["weak"])


def test_warmup_record_carries_a_seeded_strong_view_for_prune4rel(compose_cfg, tmp_path):
    from alignprune_exp.pipeline.warmup import run_warmup
    from tests.conftest import TINY_DIGITS
    from tests.test_warmup_cache import C, N, tiny_data

    data = tiny_data()
    data.strong_augment = AutoAugmentView((0.5,), (0.3,), crop_padding=1, hflip=False, cutout=4)
    cfg = compose_cfg([*TINY_DIGITS, "warmup.epochs=1", "warmup.cache_dir=null", "num_threads=1"])
    rec = run_warmup(cfg, data, num_classes=C, input_shape=(1, 8, 8), device=torch.device("cpu"))
    again = run_warmup(cfg, data, num_classes=C, input_shape=(1, 8, 8), device=torch.device("cpu"))
    assert rec.logits_strong.shape == (N, C) and rec.features_strong.shape == rec.features.shape
    assert not torch.allclose(rec.logits_strong, rec.logits)  # another view of the same model
    assert torch.equal(rec.logits_strong, again.logits_strong)  # drawn from the warm-up's seed
