"""Datasets of fixed-length float feature vectors (NEWS text): in memory, no augmentation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from alignprune_exp.data.batches import InMemoryData
from alignprune_exp.data.spec import Part, SourceSpec


class IdentityAugment:
    """``BatchAugment``'s call signature for float features: returned unchanged (no augmentation, no scaling)."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None, train: bool = True) -> torch.Tensor:
        return x

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return x


@dataclass
class FeatureSpec(SourceSpec):
    """Float32 features [n, d] with integer labels for a training and an official test split; the trainer
    reads them through ``InMemoryData`` with ``IdentityAugment``. The reference set is drawn from training."""

    name: str
    num_classes: int
    train_x: torch.Tensor
    train_labels: np.ndarray
    test_x: torch.Tensor
    test_labels: np.ndarray
    source: str
    test_name: str

    @property
    def input_shape(self) -> tuple[int]:
        return (int(self.train_x.shape[1]),)

    @property
    def train_y(self) -> np.ndarray:
        return self.train_labels

    @property
    def test_y(self) -> np.ndarray:
        return self.test_labels

    def make_source(
        self, train: Part, train_noisy: np.ndarray, reference: Part, test: Part, device: torch.device
    ) -> InMemoryData:
        def x(part: Part) -> torch.Tensor:
            split = self.test_x if part.split == "test" else self.train_x
            return split[torch.as_tensor(part.rows, dtype=torch.long)].to(device)

        def y(values) -> torch.Tensor:
            return torch.as_tensor(np.asarray(values), dtype=torch.long).to(device)

        return InMemoryData(
            x=x(train),
            y=y(train_noisy),
            y_clean=y(train.labels),
            ref_x=x(reference),
            ref_y=y(reference.labels),
            test_x=x(test),
            test_y=y(test.labels),
            augment=IdentityAugment(),
        )
