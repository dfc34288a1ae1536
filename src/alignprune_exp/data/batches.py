"""Batch sources the trainer reads from: the seam between data layouts and the training loop.

A source yields training batches for a given index order and un-augmented evaluation batches for the
``reference`` and ``test`` splits; it also exposes the noisy and clean training labels (on the training
device) so metrics about noisy samples can always be computed. ``InMemoryData`` keeps uint8 images on
the device and augments them with batched tensor ops; sources that stream from disk (large datasets)
implement the same methods.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from alignprune_exp.data.augment import BatchAugment


@dataclass
class Batch:
    """One training batch: model input, (noisy) targets and dataset indices, plus an optional strong view."""

    x: torch.Tensor
    y: torch.Tensor
    idx: torch.Tensor
    x_strong: torch.Tensor | None = None

    def subset(self, keep) -> Batch:
        """The rows ``keep`` (positions, mask or slice) of every view, so the views never disagree."""
        strong = None if self.x_strong is None else self.x_strong[keep]
        return Batch(self.x[keep], self.y[keep], self.idx[keep], strong)


class LabelledSource:
    """What every source shares: noisy labels ``y`` and clean labels ``y_clean`` of the training set."""

    y: torch.Tensor
    y_clean: torch.Tensor

    @property
    def num_samples(self) -> int:
        return len(self.y)

    @property
    def is_noisy(self) -> torch.Tensor:
        return self.y != self.y_clean

    @property
    def has_strong_eval_view(self) -> bool:
        """Whether ``train_strong_eval_batches`` yields a strong view of every training sample (Prune4ReL)."""
        return False

    def train_strong_eval_batches(
        self, batch_size: int, generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        raise NotImplementedError(f"{type(self).__name__} has no strong view of the training set")


@dataclass
class InMemoryData(LabelledSource):
    """Tensors on the training device: uint8 images, noisy and clean labels, reference and test sets."""

    x: torch.Tensor
    y: torch.Tensor
    y_clean: torch.Tensor
    ref_x: torch.Tensor
    ref_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    augment: BatchAugment
    strong_augment: BatchAugment | None = None

    def train_batches(
        self, indices: torch.Tensor, slices: list[slice], generator: torch.Generator, strong: bool = False, dist=None
    ) -> Iterator[Batch]:
        """Augmented batches over ``indices`` (dataset indices, already in training order).

        With ``dist`` (several ranks) each global batch slice yields this rank's contiguous part; the
        augmentation is drawn for the whole global batch on every rank and then cut, so a sample's crop
        and flip do not depend on the number of ranks.
        """
        for sl in slices:
            b = indices[sl]
            lo, hi = (0, len(b)) if dist is None else dist.part_bounds(len(b))
            raw = self.x[b]
            x_strong = None
            if strong:
                aug = self.strong_augment or self.augment
                x_strong = aug(raw, generator=generator, train=True)[lo:hi]
            x = self.augment(raw, generator=generator, train=True)[lo:hi]
            yield Batch(x, self.y[b[lo:hi]], b[lo:hi], x_strong)

    def eval_size(self, split: str) -> int:
        return len(self.ref_y if split == "reference" else self.test_y)

    def eval_batches(self, split: str, batch_size: int, dist=None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Normalised, un-augmented (x, y) batches of the ``reference`` or ``test`` split (with ``dist``:
        this rank's batches of a round-robin split)."""
        x, y = (self.ref_x, self.ref_y) if split == "reference" else (self.test_x, self.test_y)
        for k, i in enumerate(range(0, len(y), batch_size)):
            if dist is None or dist.mine(k):
                yield self.augment(x[i : i + batch_size], train=False), y[i : i + batch_size]

    @property
    def has_strong_eval_view(self) -> bool:
        return self.strong_augment is not None

    def train_strong_eval_batches(
        self, batch_size: int, generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Strongly augmented (x, noisy y, idx) over the whole training set in index order (Prune4ReL's scoring
        view)."""
        for i in range(0, self.num_samples, batch_size):
            idx = torch.arange(i, min(i + batch_size, self.num_samples), device=self.y.device)
            yield self.strong_augment(self.x[idx], generator=generator, train=True), self.y[idx], idx

    def train_eval_batches(
        self, batch_size: int, dist=None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Un-augmented (x, noisy y, idx) over the whole training set in index order (for warm-up scoring);
        with ``dist``, this rank's batches of a round-robin split."""
        for k, i in enumerate(range(0, self.num_samples, batch_size)):
            if dist is not None and not dist.mine(k):
                continue
            idx = torch.arange(i, min(i + batch_size, self.num_samples), device=self.y.device)
            yield self.augment(self.x[idx], train=False), self.y[idx], idx
