"""The strong view SOP+'s consistency term and Prune4ReL's scoring use: batched ops on the training device.

SOP's and Prune4ReL's strong view is fast-autoaugment's paper CIFAR-10 policy (``autoaug_paper_cifar10``, SOP
``data_loader/augmentation_archive.py``) BEFORE crop/flip, then Cutout(16), with SOP's own magnitudes and black
fill (``strong_view=autoaugment``, ``SOP_CIFAR10_POLICY`` / ``sop_value``); ``strong_view=autoaugment_torchvision``
is torchvision's table, magnitudes and grey fill after crop/flip (this project before). ``AutoAugmentView``
runs torchvision's ``transforms.v2`` ops on uint8 tensors with a policy drawn per image, as
the original (PIL, one image at a time) does. torchvision applies ONE policy to a whole batch per call,
so images are grouped by the op they drew: per op stage, one call per distinct (op, signed magnitude)
among the images that apply it (at most ~40 calls per stage, far fewer than one call per image;
``scripts/bench_strong_view.py`` measures both). ``JitterView`` (``strong_view=jitter``) is the earlier
stand-in: brightness/contrast jitter instead of AutoAugment.
"""

from __future__ import annotations

import torch

from alignprune_exp.core.errors import ConfigError
from alignprune_exp.data.augment import BatchAugment

STRONG_VIEWS = ("autoaugment", "autoaugment_torchvision", "jitter")

# SOP data_loader/augmentation_archive.py ``autoaug_paper_cifar10``: (op, probability, level 0-9) per stage.
# torchvision's CIFAR-10 table differs in one entry: its 14th sub-policy has ("Color", 0.2, 8).
SOP_CIFAR10_POLICY = (
    (("Invert", 0.1, 7), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateXAbs", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateYAbs", 0.7, 9)),
    (("AutoContrast", 0.5, 8), ("Equalize", 0.9, 2)),
    (("ShearY", 0.2, 7), ("Posterize2", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, 5), ("Equalize", 0.5, 1)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateXAbs", 0.5, 8)),
    (("Equalize", 0.3, 7), ("AutoContrast", 0.4, 8)),
    (("TranslateYAbs", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 6)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, 3)),
    (("Equalize", 0.2, 0), ("AutoContrast", 0.6, 0)),
    (("Equalize", 0.2, 8), ("Equalize", 0.6, 4)),
    (("Color", 0.9, 9), ("Equalize", 0.6, 6)),
    (("AutoContrast", 0.8, 4), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, 3)),
    (("TranslateYAbs", 0.9, 9), ("TranslateYAbs", 0.7, 9)),
    (("AutoContrast", 0.9, 2), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, 8), ("Invert", 0.1, 3)),
    (("TranslateYAbs", 0.7, 9), ("AutoContrast", 0.9, 1)),
)
SOP_SIGNED = ("ShearX", "ShearY", "TranslateXAbs", "TranslateYAbs", "Rotate")  # sign drawn with p 0.5
_SOP_TO_TORCHVISION = {"TranslateXAbs": "TranslateX", "TranslateYAbs": "TranslateY", "Posterize2": "Posterize"}
_ENHANCE = ("Contrast", "Color", "Brightness", "Sharpness")


def sop_value(op: str, level: int) -> float | None:
    """SOP's parameter of ``op`` at ``level`` (its ``autoaug2arsaug`` mapper, PARAMETER_MAX 10), None for none.

    Shear: coefficient level x 0.3 / 10; TranslateXAbs/YAbs: ``level`` pixels; Rotate: int(level x 3) degrees;
    Solarize: threshold 256 - int(level x 25.6); Posterize2: 4 - int(level x 0.4) bits; Contrast, Color,
    Brightness, Sharpness: PIL enhance factor level x 0.18 + 0.1. (Posterize 7 -> 2 bits, Color 3 -> 0.64,
    Brightness 7 -> 1.36, Translate 9 -> 9 px.)
    """
    level = float(level)
    if op in ("ShearX", "ShearY"):
        return level * 0.3 / 10
    if op in ("TranslateXAbs", "TranslateYAbs"):
        return level
    if op == "Rotate":
        return float(int(level * 30 / 10))
    if op == "Solarize":
        return float(256 - int(level * 256 / 10))
    if op == "Posterize2":
        return float(4 - int(level * 4 / 10))
    if op in _ENHANCE:
        return level * 1.8 / 10 + 0.1
    if op in ("AutoContrast", "Equalize", "Invert"):
        return None
    raise ConfigError(f"SOP's AutoAugment has no op {op!r}")


def cutout(img: torch.Tensor, side: int, generator: torch.Generator | None) -> torch.Tensor:
    """Zero one ``side`` x ``side`` square per image (centred uniformly, clipped at the border); capped at
    half the image side (8x8 digits: 4). Applied after normalisation, so zero is the dataset mean."""
    b, _, h, w = img.shape
    side = min(int(side), h // 2, w // 2)
    if side <= 0:
        return img
    gdev = generator.device if generator is not None else torch.device("cpu")
    cy = torch.randint(0, h, (b,), generator=generator, device=gdev).to(img.device)
    cx = torch.randint(0, w, (b,), generator=generator, device=gdev).to(img.device)
    rows = torch.arange(h, device=img.device)[None, :]
    cols = torch.arange(w, device=img.device)[None, :]
    in_r = (rows >= (cy - side // 2)[:, None]) & (rows < (cy - side // 2 + side)[:, None])
    in_c = (cols >= (cx - side // 2)[:, None]) & (cols < (cx - side // 2 + side)[:, None])
    return img.masked_fill(in_r[:, None, :, None] & in_c[:, None, None, :], 0.0)


class JitterView(BatchAugment):
    """Crop/flip, per-image brightness and contrast jitter, then Cutout; normalised like the weak view.

    Args:
        mean, std, crop_padding, hflip: as ``BatchAugment``.
        brightness, contrast: each image's factor is drawn uniformly from [1 - x, 1 + x].
        cutout: side (pixels) of one zeroed square per image.
    """

    def __init__(
        self,
        mean,
        std,
        crop_padding: int = 4,
        hflip: bool = True,
        brightness: float = 0.4,
        contrast: float = 0.4,
        cutout: int = 16,
    ):
        super().__init__(mean, std, crop_padding=crop_padding, hflip=hflip)
        self.brightness, self.contrast, self.cutout = float(brightness), float(contrast), int(cutout)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None, train: bool = True) -> torch.Tensor:
        if not train:
            return self.normalize(x)
        x = self.random_crop_flip(x, generator)
        b = x.shape[0]
        gdev = generator.device if generator is not None else torch.device("cpu")

        def uniform(n, lo, hi):
            return (lo + (hi - lo) * torch.rand(n, generator=generator, device=gdev)).to(x.device)

        img = x.float().div_(255.0)
        img = img * uniform(b, 1 - self.brightness, 1 + self.brightness).view(b, 1, 1, 1)
        mean = img.mean(dim=(1, 2, 3), keepdim=True)
        img = ((img - mean) * uniform(b, 1 - self.contrast, 1 + self.contrast).view(b, 1, 1, 1) + mean).clamp_(0, 1)
        img = (img - self.mean.to(x.device)) / self.std.to(x.device)
        return cutout(img, self.cutout, generator).contiguous()


StrongAugment = JitterView  # the earlier name


class AutoAugmentView(BatchAugment):
    """AutoAugment (a policy per image) and crop/flip, normalisation, then Cutout.

    Every random choice (the sub-policy, whether each of its two ops applies, the sign of signed
    magnitudes, crop, flip, Cutout) comes from ``generator``, so a seeded generator gives the same view.
    The ops are torchvision's (``v2.AutoAugment``), applied to uint8 sub-batches.

    Args:
        mean, std, crop_padding, hflip: as ``BatchAugment``.
        policy: ``cifar10`` (SOP / Prune4ReL), ``imagenet`` or ``svhn`` (``imagenet`` and ``svhn`` only with
            ``mapping="torchvision"``).
        cutout: side (pixels) of one zeroed square per image (16).
        mapping: ``sop`` (SOP's table ``SOP_CIFAR10_POLICY`` and magnitudes ``sop_value``, policy BEFORE
            crop/flip, as SOP's and Prune4ReL's loaders) or ``torchvision`` (its table and magnitude bins,
            after crop/flip).
        fill: value of pixels that affine ops move in from outside (None: 0 with ``sop``, PIL's black;
            128 with ``torchvision``, the original CIFAR10Policy's grey).
    """

    def __init__(
        self,
        mean,
        std,
        crop_padding: int = 4,
        hflip: bool = True,
        policy: str = "cifar10",
        cutout: int = 16,
        mapping: str = "sop",
        fill: int | None = None,
    ):
        super().__init__(mean, std, crop_padding=crop_padding, hflip=hflip)
        from torchvision.transforms import v2  # only where the view is built: torchvision takes ~1 s to import

        policies = {
            "cifar10": v2.AutoAugmentPolicy.CIFAR10,
            "imagenet": v2.AutoAugmentPolicy.IMAGENET,
            "svhn": v2.AutoAugmentPolicy.SVHN,
        }
        if policy not in policies:
            raise ConfigError(f"AutoAugment policy {policy!r} is not one of: {', '.join(policies)}")
        if mapping not in ("sop", "torchvision"):
            raise ConfigError(f"AutoAugment mapping {mapping!r} is not one of: sop, torchvision")
        if mapping == "sop" and policy != "cifar10":
            raise ConfigError(f"SOP's AutoAugment has only the cifar10 policy, not {policy!r}")
        self.mapping, self.policy_first = mapping, mapping == "sop"
        fill = (0 if mapping == "sop" else 128) if fill is None else int(fill)
        self.auto = v2.AutoAugment(policies[policy], fill=fill)
        for name in ("_policies", "_AUGMENTATION_SPACE", "_apply_image_or_video_transform"):
            if not hasattr(self.auto, name):  # torchvision internals this view reuses
                raise ConfigError(f"this torchvision has no AutoAugment.{name}: use strong_view=jitter")
        self.solarize = v2.functional.solarize
        self.cutout = int(cutout)
        # per sub-policy and stage: (op name, probability, magnitude index or SOP level)
        table = SOP_CIFAR10_POLICY if mapping == "sop" else self.auto._policies
        self.policies = [tuple(stage) for stage in table]
        self.probs = torch.tensor([[p for _, p, _ in pol] for pol in self.policies], dtype=torch.float64)

    def _magnitude(self, op: str, index, h: int, w: int) -> tuple[str, float, bool]:
        """(torchvision op, magnitude as ``_apply_image_or_video_transform`` takes it, signed) of one stage."""
        if self.mapping == "sop":
            value = sop_value(op, index)
            if value is None:
                return op, 0.0, False
            return _SOP_TO_TORCHVISION.get(op, op), value - 1.0 if op in _ENHANCE else value, op in SOP_SIGNED
        fn, signed = self.auto._AUGMENTATION_SPACE[op]
        mags = fn(10, h, w)
        return (op, 0.0, False) if mags is None or index is None else (op, float(mags[index]), bool(signed))

    def apply(self, img: torch.Tensor, op: str, mag: float) -> torch.Tensor:
        """One op on a uint8 batch; SOP's Solarize threshold is a pixel value (torchvision's a fraction)."""
        if op == "Solarize" and self.mapping == "sop":
            return self.solarize(img, threshold=mag)
        return self.auto._apply_image_or_video_transform(
            img, op, mag, interpolation=self.auto.interpolation, fill=self.auto._fill
        )

    def autoaugment(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """AutoAugment on a uint8 batch, one sub-policy drawn per image; images grouped by the op they apply."""
        b, _, h, w = x.shape
        gdev = generator.device if generator is not None else torch.device("cpu")
        u = torch.rand(b, 5, generator=generator, device=gdev, dtype=torch.float64).cpu()
        pol = (u[:, 0] * len(self.policies)).long().clamp_(max=len(self.policies) - 1)
        applies = u[:, 1:3] <= self.probs[pol]
        negative = u[:, 3:5] <= 0.5
        out = x.clone()
        for stage in range(2):
            groups: dict[tuple[str, float], list[int]] = {}
            for i in applies[:, stage].nonzero().squeeze(1).tolist():
                op, _, index = self.policies[int(pol[i])][stage]
                op, mag, signed = self._magnitude(op, index, h, w)
                if signed and bool(negative[i, stage]):
                    mag = -mag
                groups.setdefault((op, mag), []).append(i)
            for (op, mag), members in groups.items():
                rows = torch.tensor(members, device=x.device)
                out[rows] = self.apply(out[rows], op, mag)
        return out

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None, train: bool = True) -> torch.Tensor:
        if not train:
            return self.normalize(x)
        if self.policy_first:
            x = self.random_crop_flip(self.autoaugment(x, generator), generator)
        else:
            x = self.autoaugment(self.random_crop_flip(x, generator), generator)
        return cutout(self.normalize(x), self.cutout, generator).contiguous()


def build_strong_view(kind: str, mean, std, *, crop_padding: int, hflip: bool) -> BatchAugment:
    """``autoaugment`` (SOP's CIFAR-10 policy and magnitudes before crop/flip, whatever the dataset, as SOP and
    Prune4ReL use it on every CIFAR-N; torchvision's colour ops leave 1-channel images unchanged),
    ``autoaugment_torchvision`` (torchvision's policy after crop/flip) or ``jitter``, for images of ``mean``/``std``."""
    if kind not in STRONG_VIEWS:
        raise ConfigError(f"strong_view={kind!r} is not one of: {', '.join(STRONG_VIEWS)}")
    if kind == "jitter":
        return JitterView(mean, std, crop_padding=crop_padding, hflip=hflip)
    mapping = "sop" if kind == "autoaugment" else "torchvision"
    return AutoAugmentView(mean, std, crop_padding=crop_padding, hflip=hflip, mapping=mapping)
