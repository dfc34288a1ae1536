"""Reference variants: size, label source, and the pseudo-clean selectors built on the warm-up."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alignprune_exp.config.instantiate import instantiate
from alignprune_exp.core.errors import ConfigError
from alignprune_exp.data.splits import make_splits
from alignprune_exp.pipeline.data import build_data
from alignprune_exp.reference.selectors import PseudoCleanReference, ReferenceContext
from tests.conftest import TINY_DIGITS
from tests.test_static import make_record

pytestmark = pytest.mark.usefixtures("one_thread")


def test_pseudo_clean_selectors_map_record_rows_back_to_pool_images():
    pool = np.array([40, 7, 23, 11, 5, 31, 2, 19])  # random order, as make_splits passes it
    ordered = np.sort(pool)  # warm-up record rows follow sorted pool
    losses = torch.tensor([0.5, 0.1, 0.9, 0.2, 0.8, 0.05, 0.7, 0.6])
    feats = torch.tensor([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0], [6.0], [7.0]])
    seen = []

    def warmup(p):
        seen.append(p)
        return make_record(n=8, c=1, d=1, losses=losses, features=feats, labels=torch.zeros(8, dtype=torch.long))

    ctx = ReferenceContext(noisy_labels=np.zeros(41, int), clean_labels=np.zeros(41, int), warmup=warmup)
    small = PseudoCleanReference("smalll").select(pool, 3, ctx)
    assert np.array_equal(seen[0], ordered)
    assert sorted(small.tolist()) == sorted(ordered[[5, 1, 3]].tolist())  # the three lowest losses
    # Moderate, one class: distances to the median 3.5 rank rows 3,4,2,5,1,6,0,7; f=4/8 keeps ranks 2..5
    moderate = PseudoCleanReference("moderate").select(pool, 4, ctx)
    assert sorted(moderate.tolist()) == sorted(ordered[[2, 5, 1, 6]].tolist())
    with pytest.raises(ConfigError, match="warm-up"):
        PseudoCleanReference().select(pool, 3, None)
    with pytest.raises(ConfigError):
        PseudoCleanReference(method="largest_loss")


@pytest.mark.parametrize(
    "option,source,size,disjoint",
    [
        ("clean_val", "clean", 360, "true"),
        ("clean_val", "clean", 360, "false"),
        ("noisy_train", "noisy", 40, "false"),
        ("pseudo_clean_smalll", "noisy", 40, "true"),
        ("pseudo_clean_moderate", "noisy", 30, "false"),
    ],
)
def test_reference_variants_size_labels_and_overlap(compose_cfg, tmp_path, option, source, size, disjoint):
    extra = [] if option == "clean_val" else [f"reference.size={size}"]
    cfg = compose_cfg(
        [
            *TINY_DIGITS,
            f"reference={option}",
            *extra,
            "warmup.epochs=2",
            f"reference.disjoint={disjoint}",
            f"warmup.cache_dir={tmp_path / 'cache'}",
        ]
    )
    reference = instantiate(cfg.reference)
    assert reference.label_source == source and reference.disjoint == (disjoint == "true")
    data, info = build_data(cfg, torch.device("cpu"))
    assert info["n_reference"] == size == len(data.ref_y) and info["reference"] == option
    assert info["reference_disjoint"] == reference.disjoint
    # Re-draw the same split (the pool warm-up now comes from the cache) to know which images were chosen.
    images = instantiate(cfg.dataset.loader)
    noisy = instantiate(cfg.noise).apply(
        images.train_y, num_classes=10, dataset="digits", data_dir="", seed=int(cfg.noise_seed)
    )
    cached = []
    ctx = ReferenceContext(
        noisy, images.train_y, warmup=lambda pool: cached.append(pool) or _pool_record(cfg, images, noisy, pool)
    )
    splits = make_splits(
        len(images.train_y),
        reference=reference,
        test_split="official",
        holdout_size=0,
        official_test_size=len(images.test_y),
        seed=int(cfg.split_seed),
        context=ctx,
    )
    expected = (images.train_y if source == "clean" else noisy)[splits.reference]
    assert np.array_equal(data.ref_y.numpy(), expected)  # clean_val: the CLEAN labels, either way
    overlap = len(np.intersect1d(splits.train, splits.reference))
    if reference.disjoint:
        assert overlap == 0 and len(splits.train) == info["n_train"] == len(images.train_y) - size
    else:  # every training image trains, noisy label
        assert overlap == size and np.array_equal(splits.train, np.arange(len(images.train_y)))
        assert info["n_train"] == len(images.train_y)
    assert np.array_equal(data.y.numpy(), noisy[splits.train])
    assert info["noise_rate"] == pytest.approx(np.mean(noisy[splits.train] != images.train_y[splits.train]))
    assert 0.4 < info["noise_rate"] < 0.6  # sym0.5 on what trains, reference included
    if option == "clean_val":
        assert info["reference_noise_rate"] == 0.0
        assert np.mean(noisy[splits.reference] != images.train_y[splits.reference]) > 0.4  # it trains noisy
    if option.startswith("pseudo_clean"):
        assert len(cached) == 1 and len(list((tmp_path / "cache").glob("*.pt"))) == 1


def _pool_record(cfg, images, noisy, pool):
    from alignprune_exp.pipeline.data import pool_warmup, source_spec

    return pool_warmup(cfg, source_spec(cfg), noisy, pool, torch.device("cpu"))
