"""The warm-up run and its disk cache: trained once, reused, and rebuilt when the file is bad."""

from __future__ import annotations

import logging

import pytest
import torch

from alignprune_exp.core.safe_load import safe_torch_load
from alignprune_exp.data.augment import BatchAugment
from alignprune_exp.data.batches import InMemoryData
from alignprune_exp.pipeline.warmup import run_warmup
from alignprune_exp.pipeline.warmup_cache import load_cached, save_cached
from tests.conftest import TINY_DIGITS

N, C = 120, 4


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_data(seed=0) -> InMemoryData:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(N) % C
    x = (torch.rand(N, 1, 8, 8, generator=g) * 60 + (y * 60)[:, None, None, None]).to(torch.uint8)
    return InMemoryData(
        x=x,
        y=y,
        y_clean=y.clone(),
        ref_x=x[:0],
        ref_y=y[:0],
        test_x=x[:20],
        test_y=y[:20],
        augment=BatchAugment((0.5,), (0.3,), crop_padding=1, hflip=False),
    )


@pytest.fixture
def cfg(compose_cfg, tmp_path):
    return compose_cfg([*TINY_DIGITS, "warmup.epochs=3", f"warmup.cache_dir={tmp_path / 'cache'}"])


def warm(cfg, data, extra=None):
    return run_warmup(
        cfg, data, num_classes=C, input_shape=(1, 8, 8), device=torch.device("cpu"), cache_key_extra=extra or {}
    )


def messages(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "alignprune"]


def test_record_shapes_and_contents(cfg):
    rec = warm(cfg, tiny_data())
    assert rec.probs.shape == (3, N) and rec.logits.shape == (N, C) and rec.features.shape == (N, 256)
    assert rec.losses.shape == rec.forgetting.shape == rec.ever_learned.shape == (N,)
    assert torch.equal(rec.labels, torch.arange(N) % C)
    assert ((rec.probs > 0) & (rec.probs < 1)).all()
    expected = torch.nn.functional.cross_entropy(rec.logits, rec.labels, reduction="none")
    assert torch.allclose(rec.losses, expected, atol=1e-6)
    assert int(rec.forgetting.max()) <= 1  # 3 presentations: at most one 1->0 flip
    assert rec.ever_learned.float().mean() > 0.5  # these blobs are easy


def test_cache_is_reused_and_leaves_global_rng_alone(cfg, caplog, tmp_path):
    caplog.set_level(logging.INFO, logger="alignprune")
    state = torch.get_rng_state()
    first = warm(cfg, tiny_data())
    assert torch.equal(torch.get_rng_state(), state)  # hit or miss, the main run draws the same
    files = list((tmp_path / "cache").glob("*.pt"))
    assert len(files) == 1 and any("warm-up cache miss" in m for m in messages(caplog))
    caplog.clear()
    second = warm(cfg, tiny_data())
    assert any(m == f"warm-up cache hit: {files[0]}" for m in messages(caplog))
    for name, value in first.tensors().items():
        assert torch.equal(value, getattr(second, name)), name


def test_key_changes_with_what_the_record_depends_on(cfg, compose_cfg, tmp_path):
    warm(cfg, tiny_data())
    warm(cfg, tiny_data(), extra={"pool": torch.arange(5)})
    flipped = tiny_data()
    flipped.y[0] = 3  # another noise draw
    warm(cfg, flipped)
    other = compose_cfg([*TINY_DIGITS, "warmup.epochs=2", "seed=1", f"warmup.cache_dir={tmp_path / 'cache'}"])
    warm(other, tiny_data())
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 4


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other_key", "bad_shape"])
def test_corrupt_or_mismatched_cache_is_rebuilt(cfg, caplog, tmp_path, damage):
    caplog.set_level(logging.INFO, logger="alignprune")
    good = warm(cfg, tiny_data())
    path = next((tmp_path / "cache").glob("*.pt"))
    raw = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not a torch file at all")
    elif damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "other_key":
        save_cached(path, "some other configuration", good)
    else:
        broken = good.to("cpu")
        broken.probs = broken.probs[:, :5]
        key = safe_torch_load(path)["key"]
        save_cached(path, key, broken)
    caplog.clear()
    rebuilt = warm(cfg, tiny_data())
    assert any("rebuilding" in m and str(path) in m for m in messages(caplog))
    for name, value in good.tensors().items():  # same seeds, same record
        assert torch.equal(value, getattr(rebuilt, name)), name
    key = safe_torch_load(path)["key"]
    assert load_cached(path, key) is not None  # the rebuilt file is valid again


def test_no_cache_dir_trains_every_time(compose_cfg, tmp_path):
    cfg = compose_cfg([*TINY_DIGITS, "warmup.epochs=1", "warmup.cache_dir=null"])
    rec = warm(cfg, tiny_data())
    assert rec.probs.shape == (1, N) and not list(tmp_path.rglob("*.pt"))
