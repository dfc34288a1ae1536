"""SOP's AutoAugment (fast-autoaugment paper CIFAR-10 policy): its magnitudes, black fill, policy before crop/flip."""

from __future__ import annotations

import pytest
import torch

from alignprune_exp.core.errors import ConfigError
from alignprune_exp.data import strong_augment as sa

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def test_sop_magnitudes_of_the_listed_examples():
    view = sa.AutoAugmentView(MEAN, STD, crop_padding=0, hflip=False, cutout=0)
    assert view.mapping == "sop" and view.policy_first
    assert view._magnitude("Posterize2", 7, 32, 32) == ("Posterize", 2.0, False)  # torchvision: 5 bits
    op, mag, signed = view._magnitude("Color", 3, 32, 32)
    assert (op, signed) == ("Color", False) and 1.0 + mag == pytest.approx(0.64)  # torchvision: 1 +/- 0.3
    assert 1.0 + view._magnitude("Brightness", 7, 32, 32)[1] == pytest.approx(1.36)
    assert view._magnitude("TranslateXAbs", 9, 32, 32) == ("TranslateX", 9.0, True)  # torchvision: 14.5 px
    assert view._magnitude("TranslateYAbs", 3, 32, 32) == ("TranslateY", 3.0, True)
    assert view._magnitude("Rotate", 2, 32, 32) == ("Rotate", 6.0, True)
    assert view._magnitude("ShearY", 8, 32, 32)[1] == pytest.approx(0.24)
    assert [sa.sop_value("Solarize", lv) for lv in (2, 3, 5, 8)] == [205.0, 180.0, 128.0, 52.0]
    assert sa.sop_value("Sharpness", 9) == pytest.approx(1.72) and sa.sop_value("Invert", 7) is None
    assert view.auto._fill == {"others": 0} and tv_fill() == {"others": 128}
    # torchvision's mapping stays an option with its own values
    tv = sa.AutoAugmentView(MEAN, STD, mapping="torchvision")
    assert not tv.policy_first and tv._magnitude("Posterize", 7, 32, 32)[1] == 5.0
    assert tv._magnitude("TranslateX", 9, 32, 32)[1] == pytest.approx(150 / 331 * 32)
    with pytest.raises(ConfigError, match="mapping"):
        sa.AutoAugmentView(MEAN, STD, mapping="pil")


def test_sop_table_is_fast_autoaugments_paper_cifar10():
    assert len(sa.SOP_CIFAR10_POLICY) == 25
    assert sa.SOP_CIFAR10_POLICY[5] == (("ShearY", 0.2, 7), ("Posterize2", 0.3, 7))
    assert sa.SOP_CIFAR10_POLICY[13] == (("Brightness", 0.9, 6), ("Color", 0.2, 6))


def test_ops_apply_sop_values_with_black_fill():
    view = sa.AutoAugmentView(MEAN, STD, crop_padding=0, hflip=False, cutout=0)
    x = torch.full((1, 3, 32, 32), 200, dtype=torch.uint8)
    shifted = view.apply(x, "TranslateX", 9.0)
    assert int((shifted == 0).all(1).sum()) == 9 * 32 and int((shifted == 200).all(1).sum()) == 23 * 32
    assert torch.equal(view.apply(x, "Posterize", 2.0), torch.full_like(x, 192))  # 200 & 0b11000000
    ramp = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16).expand(1, 3, 16, 16)
    sol = view.apply(ramp, "Solarize", 205.0)
    assert int(sol.flatten()[204]) == 204 and int(sol.flatten()[205]) == 50  # >= 205 inverted
    assert torch.equal(view.apply(x, "Brightness", 0.36), torch.full_like(x, 255))  # 200 x 1.36, clipped


def test_policy_runs_before_crop_flip(monkeypatch):
    calls = []
    view = sa.AutoAugmentView(MEAN, STD, crop_padding=2, hflip=True, cutout=0)
    monkeypatch.setattr(view, "autoaugment", lambda x, g: calls.append("policy") or x)
    monkeypatch.setattr(view, "random_crop_flip", lambda x, g: calls.append("crop_flip") or x)
    view(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), generator=torch.Generator().manual_seed(0))
    assert calls == ["policy", "crop_flip"]
    tv = sa.AutoAugmentView(MEAN, STD, crop_padding=2, hflip=True, cutout=0, mapping="torchvision")
    calls.clear()
    monkeypatch.setattr(tv, "autoaugment", lambda x, g: calls.append("policy") or x)
    monkeypatch.setattr(tv, "random_crop_flip", lambda x, g: calls.append("crop_flip") or x)
    tv(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), generator=torch.Generator().manual_seed(0))
    assert calls == ["crop_flip", "policy"]


def test_strong_view_options_are_validated():
    assert sa.STRONG_VIEWS == ("autoaugment", "autoaugment_torchvision", "jitter")
    view = sa.build_strong_view("autoaugment", MEAN, STD, crop_padding=4, hflip=True)
    assert view.mapping == "sop"
    view = sa.build_strong_view("autoaugment_torchvision", MEAN, STD, crop_padding=4, hflip=True)
    assert view.mapping == "torchvision"
    with pytest.raises(ConfigError, match="strong_view"):
        sa.build_strong_view("autoaugment_pil", MEAN, STD, crop_padding=4, hflip=True)


def tv_fill():
    return sa.AutoAugmentView(MEAN, STD, mapping="torchvision").auto._fill
