"""Model construction: timm architectures by name, plus two small CPU-sized networks."""

from __future__ import annotations

import math

import timm
from torch import nn

from .errors import ConfigError


def build_model(name: str, num_classes: int, input_shape: tuple[int, int, int] = (3, 32, 32),
                width: int = 64, depth: int = 3, hidden: int = 256, dropout: float = 0.0) -> nn.Module:
    """Build a classifier by name.

    Args:
        name: ``resnet18_cifar`` (timm ResNet-18 with a 3x3 stride-1 stem and no max-pool, the usual
            CIFAR variant), ``small_cnn`` (conv-BN-ReLU blocks, for CPU runs) or ``mlp``.
        num_classes: output classes.
        input_shape: (channels, height, width) of one input image.
        width, depth: base channels and number of blocks of ``small_cnn``.
        hidden: hidden units of ``mlp``.
    """
    in_chans = int(input_shape[0])
    if name == "resnet18_cifar":
        return resnet18_cifar(num_classes, in_chans)
    if name == "small_cnn":
        return SmallCNN(num_classes, in_chans, width=width, depth=depth)
    if name == "mlp":
        return MLP(num_classes, in_features=math.prod(input_shape), hidden=hidden, dropout=dropout)
    raise ConfigError(f"unknown model '{name}': choose resnet18_cifar, small_cnn or mlp")


def resnet18_cifar(num_classes: int, in_chans: int = 3) -> nn.Module:
    """timm ResNet-18 with the CIFAR stem: 3x3 stride-1 conv and no max-pool (32x32 inputs keep resolution)."""
    model = timm.create_model("resnet18", pretrained=False, num_classes=num_classes, in_chans=in_chans)
    model.conv1 = nn.Conv2d(in_chans, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


class SmallCNN(nn.Sequential):
    """A few conv-BN-ReLU blocks with pooling and a linear head: trains CIFAR on a CPU in minutes."""

    def __init__(self, num_classes: int, in_chans: int = 3, width: int = 64, depth: int = 3):
        layers: list[nn.Module] = []
        channels = in_chans
        for i in range(depth):
            out = width * 2**i
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out),
                       nn.ReLU(inplace=True)]
            if i < depth - 1:
                layers.append(nn.MaxPool2d(2))
            channels = out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]
        super().__init__(*layers)


class MLP(nn.Sequential):
    """Two hidden layers over the flattened image."""

    def __init__(self, num_classes: int, in_features: int, hidden: int = 256, dropout: float = 0.0):
        super().__init__(
            nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def features_and_logits(model: nn.Module, x):
    """Penultimate features and logits in one forward (batch-level selection and static scores use both)."""
    if hasattr(model, "forward_features") and hasattr(model, "forward_head"):
        feats = model.forward_head(model.forward_features(x), pre_logits=True)
        return feats, model.get_classifier()(feats)
    if isinstance(model, nn.Sequential):
        feats = model[:-1](x)
        return feats.flatten(1), model[-1](feats)
    raise ConfigError(f"{type(model).__name__} exposes no penultimate features: use a timm model or an "
                      "nn.Sequential whose last layer is the classifier")
