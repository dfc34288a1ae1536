"""The paper's large models build from their config files with the right class count and run at their input
size; weights come only from local checkpoint files; the ImageNet / NEWS learning-rate schedules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from alignprune_exp.config.instantiate import instantiate
from alignprune_exp.core.errors import DataError
from alignprune_exp.models.builders import build_model, classifier_prefixes
from alignprune_exp.train.schedule import Cosine, LinearDecay

# Config option -> (timm architecture, input shape of one sample).
LARGE = {
    "resnet50": ("resnet50", (3, 224, 224)),
    "inception_resnet_v2": ("inception_resnet_v2", (3, 299, 299)),
    "convnext_tiny": ("convnext_tiny", (3, 224, 224)),
    "convnext_base": ("convnext_base", (3, 224, 224)),
    "deit_small": ("deit_small_patch16_224", (3, 224, 224)),
    "deit_base": ("deit_base_patch16_224", (3, 224, 224)),
    "swin_tiny": ("swin_tiny_patch4_window7_224", (3, 224, 224)),
    "swin_base": ("swin_base_patch4_window7_224", (3, 224, 224)),
}


@pytest.mark.parametrize("option", sorted(LARGE))
def test_model_file_builds_and_runs_at_its_input_size(compose_cfg, option):
    arch, shape = LARGE[option]
    cfg = compose_cfg([f"model={option}"])
    assert cfg.model.name == arch and cfg.model.checkpoint is None
    model = instantiate(cfg.model, num_classes=14, input_shape=shape).eval()
    assert model.get_classifier().out_features == 14
    with torch.no_grad():
        logits = model(torch.randn(1, *shape))
    assert logits.shape == (1, 14) and torch.isfinite(logits).all()


def test_mlp3_is_coteaching_plus_news_head(compose_cfg):
    model = instantiate(compose_cfg(["model=mlp3"]).model, num_classes=7, input_shape=(4800,))
    linears = [m for m in model if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(4800, 1200), (1200, 300), (300, 7)]
    assert [type(m) for m in model].count(nn.BatchNorm1d) == 2 and [type(m) for m in model].count(nn.Softsign) == 2
    assert model(torch.randn(4, 4800)).shape == (4, 7)


def test_transformers_follow_the_input_size():
    model = build_model("deit_small_patch16_224", num_classes=5, input_shape=(3, 64, 64)).eval()
    assert model.patch_embed.grid_size == (4, 4) and model(torch.randn(1, 3, 64, 64)).shape == (1, 5)


def test_checkpoint_loads_all_but_a_head_of_another_class_count(tmp_path):
    source = build_model("resnet50", num_classes=1000, input_shape=(3, 224, 224))
    path = tmp_path / "resnet50_imagenet.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    model = build_model("resnet50", num_classes=14, input_shape=(3, 224, 224), checkpoint=str(path))
    assert torch.equal(model.conv1.weight, source.conv1.weight)
    assert torch.equal(model.layer4[2].bn3.running_var, source.layer4[2].bn3.running_var)
    assert model.fc.weight.shape == (14, 2048) and classifier_prefixes(model) == ("fc.",)
    same = build_model("resnet50", num_classes=1000, input_shape=(3, 224, 224), checkpoint=str(path))
    assert torch.equal(same.fc.weight, source.fc.weight)


def test_checkpoint_errors_are_one_line_and_name_the_file(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(DataError) as err:
        build_model("mlp3", num_classes=3, input_shape=(8,), checkpoint=str(missing))
    assert str(missing) in str(err.value) and "\n" not in str(err.value)
    other = tmp_path / "mlp.pth"
    torch.save(build_model("mlp", num_classes=3, input_shape=(8,)).state_dict(), other)
    with pytest.raises(DataError, match="does not fit") as err:
        build_model("mlp3", num_classes=3, input_shape=(8,), checkpoint=str(other))
    assert str(other) in str(err.value)
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"w": torch.zeros(2), "obj": Cosine()}, unsafe)
    with pytest.raises(DataError, match="refusing to load"):
        build_model("mlp3", num_classes=3, input_shape=(8,), checkpoint=str(unsafe))


def test_cosine_and_linear_decay_schedules():
    cos = Cosine(warmup_fraction=0.1, min_factor=0.01)
    assert cos.factor(0.0) == 0.0 and cos.factor(0.05) == pytest.approx(0.5) and cos.factor(0.1) == pytest.approx(1.0)
    assert cos.factor(0.55) == pytest.approx(0.505) and cos.factor(1.0) == pytest.approx(0.01)
    lin = LinearDecay(start_fraction=0.4)
    assert lin.factor(0.2) == 1.0 and lin.factor(0.7) == pytest.approx(0.5) and lin.factor(1.0) == 0.0
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.2)
    assert lin.apply(opt, 0.7) == pytest.approx(0.1)
