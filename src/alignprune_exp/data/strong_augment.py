"""The strong view SOP+'s consistency term compares against: batched tensor ops on the training device.

SOP+ and Prune4ReL use AutoAugment (CIFAR-10 policy) + crop/flip + Cutout(16). AutoAugment's PIL policy
has no batched tensor form in the in-memory path, so this view substitutes per-image random brightness
and contrast jitter for it, keeping crop/flip and Cutout.
"""

from __future__ import annotations

import torch

from .augment import BatchAugment


class StrongAugment(BatchAugment):
    """Crop/flip, per-image brightness and contrast jitter, then Cutout; normalised like the weak view.

    Args:
        mean, std, crop_padding, hflip: as ``BatchAugment``.
        brightness, contrast: each image's factor is drawn uniformly from [1 - x, 1 + x].
        cutout: side (pixels) of one zeroed square per image (after normalisation, i.e. the dataset mean),
            centred uniformly and clipped at the border; capped at half the image side (8x8 digits: 4).
    """

    def __init__(self, mean, std, crop_padding: int = 4, hflip: bool = True, brightness: float = 0.4,
                 contrast: float = 0.4, cutout: int = 16):
        super().__init__(mean, std, crop_padding=crop_padding, hflip=hflip)
        self.brightness, self.contrast, self.cutout = float(brightness), float(contrast), int(cutout)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None,
                 train: bool = True) -> torch.Tensor:
        if not train:
            return self.normalize(x)
        x = self.random_crop_flip(x, generator)
        b, _, h, w = x.shape
        gdev = generator.device if generator is not None else torch.device("cpu")

        def uniform(n, lo, hi):
            return (lo + (hi - lo) * torch.rand(n, generator=generator, device=gdev)).to(x.device)

        img = x.float().div_(255.0)
        img = img * uniform(b, 1 - self.brightness, 1 + self.brightness).view(b, 1, 1, 1)
        mean = img.mean(dim=(1, 2, 3), keepdim=True)
        img = ((img - mean) * uniform(b, 1 - self.contrast, 1 + self.contrast).view(b, 1, 1, 1) + mean).clamp_(0, 1)
        img = (img - self.mean.to(x.device)) / self.std.to(x.device)
        side = min(self.cutout, h // 2, w // 2)
        if side > 0:
            cy = torch.randint(0, h, (b,), generator=generator, device=gdev).to(x.device)
            cx = torch.randint(0, w, (b,), generator=generator, device=gdev).to(x.device)
            rows = torch.arange(h, device=x.device)[None, :]
            cols = torch.arange(w, device=x.device)[None, :]
            in_r = (rows >= (cy - side // 2)[:, None]) & (rows < (cy - side // 2 + side)[:, None])
            in_c = (cols >= (cx - side // 2)[:, None]) & (cols < (cx - side // 2 + side)[:, None])
            hole = in_r[:, None, :, None] & in_c[:, None, None, :]
            img = img.masked_fill(hole, 0.0)
        return img.contiguous()


def strong_augment_for(cfg, images) -> StrongAugment | None:
    """The strong view when the configured criterion needs one (``needs_strong_view``), else None."""
    from hydra.utils import get_class

    if not getattr(get_class(cfg.loss._target_), "needs_strong_view", False):
        return None
    return StrongAugment(images.mean, images.std, crop_padding=cfg.dataset.crop_padding, hflip=cfg.dataset.hflip)
