"""Batched image augmentation on the training device: random crop with zero padding, horizontal flip."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class BatchAugment:
    """Normalises uint8 NCHW batches and, in training, applies per-image random crop and flip as tensor ops.

    Args:
        mean, std: per-channel statistics in [0, 1] units.
        crop_padding: zero padding before a random crop back to the input size (0 disables).
        hflip: flip each image horizontally with probability 1/2.
    """

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], crop_padding: int = 4, hflip: bool = True):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.crop_padding = int(crop_padding)
        self.hflip = bool(hflip)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 [B, C, H, W] -> normalised float32."""
        mean, std = self.mean.to(x.device), self.std.to(x.device)
        return (x.float().div_(255.0) - mean) / std

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None, train: bool = True) -> torch.Tensor:
        """Augment (when ``train``) and normalise a uint8 batch; randomness comes from ``generator`` only."""
        if train:
            x = self.random_crop_flip(x, generator)
        return self.normalize(x)

    def random_crop_flip(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Per-image crop offsets and flips, drawn on the generator's device and applied by one gather."""
        b, _, h, w = x.shape
        gdev = generator.device if generator is not None else torch.device("cpu")
        p = self.crop_padding
        if p > 0:
            padded = F.pad(x, (p, p, p, p))
            off = torch.randint(0, 2 * p + 1, (2, b), generator=generator, device=gdev).to(x.device)
            rows = off[0][:, None] + torch.arange(h, device=x.device)  # [B, H]
            cols = off[1][:, None] + torch.arange(w, device=x.device)  # [B, W]
            batch = torch.arange(b, device=x.device)[:, None, None]
            x = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
        if self.hflip:
            flip = torch.rand(b, generator=generator, device=gdev).to(x.device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x.contiguous()
