"""Model construction: timm architectures by name, plus small CPU-sized networks; weights only from local files."""

from __future__ import annotations

import math
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from alignprune_exp.core.errors import ConfigError, DataError
from alignprune_exp.core.safe_load import safe_torch_load

# timm families whose patch / window grid is fixed at build time: they get ``img_size`` from the input.
_FIXED_GRID = ("vit_", "deit", "swin", "beit", "eva")


def _timm() -> ModuleType:
    """timm, imported where a timm model is named or built: it takes about half a second (and pulls in
    wandb), which runs of the small CPU nets (``mlp``, ``small_cnn``) never need."""
    import timm

    return timm


def build_model(
    name: str,
    num_classes: int,
    input_shape: tuple[int, ...] = (3, 32, 32),
    width: int = 64,
    depth: int = 3,
    hidden: int = 256,
    dropout: float = 0.0,
    drop_path_rate: float = 0.0,
    checkpoint: str | None = None,
    sync_bn: bool = False,
) -> nn.Module:
    """Build a classifier by name.

    Args:
        name: ``resnet18_cifar`` (timm ResNet-18 with a 3x3 stride-1 stem and no max-pool, the usual
            CIFAR variant), ``small_cnn`` (conv-BN-ReLU blocks, for CPU runs), ``mlp``, ``mlp3`` (the NEWS
            3-layer MLP), or any timm architecture (``resnet50``, ``inception_resnet_v2``, ``convnext_tiny``,
            ``deit_small_patch16_224``, ``swin_tiny_patch4_window7_224``, ...), built with random weights.
        num_classes: output classes.
        input_shape: (channels, height, width) of one input image, or (features,) for feature vectors.
        width, depth: base channels and number of blocks of ``small_cnn``.
        hidden: hidden units of ``mlp`` / ``mlp3``.
        drop_path_rate: stochastic depth of timm models that support it (0 disables).
        checkpoint: a local weights file (``torch.save`` state dict or ``.safetensors``) loaded after
            building; a classifier head of another class count is left freshly initialised. Nothing is
            ever downloaded.
        sync_bn: convert BatchNorm layers to SyncBatchNorm (batch statistics over all ranks of a
            multi-GPU run; plain BatchNorm in a single process).
    """
    in_chans = int(input_shape[0])
    if name == "resnet18_cifar":
        model = resnet18_cifar(num_classes, in_chans)
    elif name == "small_cnn":
        model = SmallCNN(num_classes, in_chans, width=width, depth=depth)
    elif name == "mlp":
        model = MLP(num_classes, in_features=math.prod(input_shape), hidden=hidden, dropout=dropout)
    elif name == "mlp3":
        model = MLP3(num_classes, in_features=math.prod(input_shape), hidden=hidden)
    elif _timm().is_model(name):
        model = timm_model(name, num_classes, tuple(input_shape), drop_path_rate)
    else:
        raise ConfigError(
            f"unknown model '{name}': choose resnet18_cifar, small_cnn, mlp, mlp3 or a timm "
            "architecture name (resnet50, inception_resnet_v2, convnext_tiny, deit_small_patch16_224, "
            "swin_tiny_patch4_window7_224, ...)"
        )
    if checkpoint:
        load_checkpoint(model, checkpoint)
    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def timm_model(name: str, num_classes: int, input_shape: tuple[int, ...], drop_path_rate: float = 0.0) -> nn.Module:
    """A timm architecture with random weights (``pretrained=False``: the hub is never contacted)."""
    if len(input_shape) != 3:
        raise ConfigError(f"{name} takes images, but the data gives inputs of shape {input_shape}")
    kwargs: dict = {"num_classes": num_classes, "in_chans": int(input_shape[0])}
    if drop_path_rate:
        kwargs["drop_path_rate"] = float(drop_path_rate)
    timm = _timm()
    default = timm.get_pretrained_cfg_value(name, "input_size")
    if name.startswith(_FIXED_GRID) and default is not None and tuple(default[1:]) != tuple(input_shape[1:]):
        kwargs["img_size"] = tuple(int(s) for s in input_shape[1:])
    return timm.create_model(name, pretrained=False, **kwargs)


def load_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Load weights from a local file into ``model``; the classifier head is skipped when its shape differs.

    Accepts a plain state dict or one wrapped under ``state_dict`` / ``model`` (``module.`` prefixes of
    DataParallel are stripped); torchvision's ResNet-50 ImageNet weights fit timm's ``resnet50`` as they are.

    Raises:
        DataError: missing or unsafe file, or weights of a different architecture.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(
            f"checkpoint file {path} does not exist; set model.checkpoint to a local weights file "
            "(nothing is downloaded)"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = safe_torch_load(path)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{path} holds no state dict of tensors; save one with torch.save(model.state_dict(), path)")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    own = model.state_dict()
    head = classifier_prefixes(model)
    state = {k: v for k, v in state.items() if not (k.startswith(head) and (k not in own or own[k].shape != v.shape))}
    wrong = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    missing, unexpected = model.load_state_dict({k: v for k, v in state.items() if k not in wrong}, strict=False)
    missing = [k for k in missing if not k.startswith(head) and not k.endswith("num_batches_tracked")]
    if wrong or missing or unexpected:
        example = (wrong or missing or unexpected)[0]
        raise DataError(
            f"checkpoint {path} does not fit {type(model).__name__}: {len(wrong)} tensors of another "
            f"shape, {len(missing)} missing, {len(unexpected)} unexpected (e.g. {example}); use "
            "weights of the same architecture"
        )


def classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    """State-dict key prefixes of the classifier head (timm's ``pretrained_cfg``, else a Sequential's last layer)."""
    names = getattr(model, "pretrained_cfg", {}).get("classifier")
    if names is None and isinstance(model, nn.Sequential):
        names = str(len(model) - 1)
    names = (names,) if isinstance(names, str) else tuple(names or ())
    return tuple(f"{n}." for n in names)


def resnet18_cifar(num_classes: int, in_chans: int = 3) -> nn.Module:
    """timm ResNet-18 with the CIFAR stem: 3x3 stride-1 conv and no max-pool (32x32 inputs keep resolution)."""
    model = _timm().create_model("resnet18", pretrained=False, num_classes=num_classes, in_chans=in_chans)
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
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            if i < depth - 1:
                layers.append(nn.MaxPool2d(2))
            channels = out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]
        super().__init__(*layers)


class MLP(nn.Sequential):
    """Two hidden layers over the flattened image."""

    def __init__(self, num_classes: int, in_features: int, hidden: int = 256, dropout: float = 0.0):
        super().__init__(
            nn.Flatten(),
            nn.Linear(in_features, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )


class MLP3(nn.Sequential):
    """Co-teaching+'s NEWS classifier after its frozen embedding front end (Yu et al. 2019; paper Table H):
    Linear(d, 4h)-BN-Softsign, Linear(4h, h)-BN-Softsign, Linear(h, classes)."""

    def __init__(self, num_classes: int, in_features: int, hidden: int = 300):
        super().__init__(
            nn.Flatten(),
            nn.Linear(in_features, 4 * hidden),
            nn.BatchNorm1d(4 * hidden),
            nn.Softsign(),
            nn.Linear(4 * hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.Softsign(),
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
        # Slicing (model[:-1]) would rebuild the subclass (MLP, SmallCNN) and fail: run the layers.
        *body, head = list(model)
        feats = x
        for layer in body:
            feats = layer(feats)
        return feats.flatten(1), head(feats)
    raise ConfigError(
        f"{type(model).__name__} exposes no penultimate features: use a timm model or an "
        "nn.Sequential whose last layer is the classifier"
    )
