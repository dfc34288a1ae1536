"""The strong view SOP+'s consistency term and Prune4ReL's scoring use: batched ops on the training device.

SOP's and Prune4ReL's strong view is crop/flip + AutoAugment (CIFAR-10 policy) + Cutout(16). ``AutoAugmentView``
runs torchvision's ``transforms.v2`` AutoAugment ops on uint8 tensors with a policy drawn per image, as
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

STRONG_VIEWS = ("autoaugment", "jitter")


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
    """Crop/flip, AutoAugment (a policy per image), normalisation, then Cutout.

    Every random choice (the sub-policy, whether each of its two ops applies, the sign of signed
    magnitudes, crop, flip, Cutout) comes from ``generator``, so a seeded generator gives the same view.
    The ops and the policy table are torchvision's (``v2.AutoAugment``), applied to uint8 sub-batches.

    Args:
        mean, std, crop_padding, hflip: as ``BatchAugment``.
        policy: ``cifar10`` (SOP / Prune4ReL), ``imagenet`` or ``svhn``.
        cutout: side (pixels) of one zeroed square per image (16).
        fill: value of pixels that affine ops move in from outside (128: the original CIFAR10Policy's grey).
    """

    def __init__(
        self,
        mean,
        std,
        crop_padding: int = 4,
        hflip: bool = True,
        policy: str = "cifar10",
        cutout: int = 16,
        fill: int = 128,
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
        self.auto = v2.AutoAugment(policies[policy], fill=fill)
        for name in ("_policies", "_AUGMENTATION_SPACE", "_apply_image_or_video_transform"):
            if not hasattr(self.auto, name):  # torchvision internals this view reuses
                raise ConfigError(f"this torchvision has no AutoAugment.{name}: use strong_view=jitter")
        self.cutout = int(cutout)
        # per sub-policy and stage: (op name, probability, magnitude index or None)
        self.policies = [tuple(stage) for stage in self.auto._policies]
        self.probs = torch.tensor([[p for _, p, _ in pol] for pol in self.policies], dtype=torch.float64)

    def _magnitude(self, op: str, index, h: int, w: int) -> tuple[float, bool]:
        fn, signed = self.auto._AUGMENTATION_SPACE[op]
        mags = fn(10, h, w)
        return (0.0, False) if mags is None or index is None else (float(mags[index]), bool(signed))

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
                mag, signed = self._magnitude(op, index, h, w)
                if signed and bool(negative[i, stage]):
                    mag = -mag
                groups.setdefault((op, mag), []).append(i)
            for (op, mag), members in groups.items():
                rows = torch.tensor(members, device=x.device)
                out[rows] = self.auto._apply_image_or_video_transform(
                    out[rows], op, mag, interpolation=self.auto.interpolation, fill=self.auto._fill
                )
        return out

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None, train: bool = True) -> torch.Tensor:
        if not train:
            return self.normalize(x)
        x = self.autoaugment(self.random_crop_flip(x, generator), generator)
        return cutout(self.normalize(x), self.cutout, generator).contiguous()


def build_strong_view(kind: str, mean, std, *, crop_padding: int, hflip: bool) -> BatchAugment:
    """``autoaugment`` (the CIFAR-10 policy, whatever the dataset, as SOP and Prune4ReL use it on every CIFAR-N;
    torchvision's colour ops leave 1-channel images unchanged) or ``jitter``, for images of ``mean``/``std``."""
    if kind not in STRONG_VIEWS:
        raise ConfigError(f"strong_view={kind!r} is not one of: {', '.join(STRONG_VIEWS)}")
    view = AutoAugmentView if kind == "autoaugment" else JitterView
    return view(mean, std, crop_padding=crop_padding, hflip=hflip)
