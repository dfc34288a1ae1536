"""What every dataset loader hands the pipeline: a ``SourceSpec`` that builds the run's batch source from parts.

The pipeline applies label noise, carves out the reference and test sets and cuts the training subset once,
for every dataset alike (``pipeline.data``); a spec turns those row ``Part``s into a batch source. Images held
in memory (``base.ImageData``) are wrapped by ``InMemorySpec``; streamed images and precomputed features
bring their own spec (``image_files``, ``features``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from alignprune_exp.data.augment import BatchAugment
from alignprune_exp.data.base import ImageData
from alignprune_exp.data.batches import InMemoryData


@dataclass(frozen=True)
class Part:
    """Rows of one split of a spec (``train``, ``reference`` or ``test``) with the labels to use for them."""

    split: str
    rows: np.ndarray
    labels: np.ndarray


class SourceSpec:
    """A dataset that builds its batch source from parts (streamed images, precomputed features, memory).

    Subclasses provide: ``name``, ``num_classes``, ``input_shape``, ``source`` (where it was read from),
    ``train_y`` (training labels), ``labels_are_clean`` (False when those are real noisy labels with no
    clean version, as WebVision's and Clothing-1M's), ``test_y`` and ``test_name`` (the official test split),
    ``reference_y`` and ``reference_name`` (an official clean validation split used as the reference set,
    paper Sec. 4.1, or None to draw the reference from training), and ``make_source``.
    """

    reference_y: np.ndarray | None = None
    reference_name: str | None = None
    labels_are_clean: bool = True

    def make_source(self, train: Part, train_noisy: np.ndarray, reference: Part, test: Part, device: torch.device):
        raise NotImplementedError


class InMemorySpec(SourceSpec):
    """An in-memory dataset as a spec: parts become uint8 image tensors on the training device."""

    def __init__(self, images: ImageData, augment: BatchAugment, strong_augment: BatchAugment | None):
        self.images, self.augment, self.strong_augment = images, augment, strong_augment
        self.name, self.num_classes, self.source = images.name, images.num_classes, images.source
        self.train_y, self.test_y = images.train_y, images.test_y
        self.input_shape = tuple(images.train_x.shape[1:])
        self.test_name = None if images.test_y is None else f"{len(images.test_y)} official test images"

    def _x(self, part: Part) -> torch.Tensor:
        return (self.images.test_x if part.split == "test" else self.images.train_x)[part.rows]

    def make_source(
        self, train: Part, train_noisy: np.ndarray, reference: Part, test: Part, device: torch.device
    ) -> InMemoryData:
        def dev(a, dtype=None):
            return torch.as_tensor(a, dtype=dtype).to(device)

        return InMemoryData(
            x=dev(self._x(train)),
            y=dev(train_noisy, torch.long),
            y_clean=dev(train.labels, torch.long),
            ref_x=dev(self._x(reference)),
            ref_y=dev(reference.labels, torch.long),
            test_x=dev(self._x(test)),
            test_y=dev(test.labels, torch.long),
            augment=self.augment,
            strong_augment=self.strong_augment,
        )
