"""Sources for datasets too large to hold in memory: images stream from disk through a DataLoader.

``StreamingData`` implements the batch-source interface of ``batches.InMemoryData`` (``train_batches``,
``eval_batches``, ``train_eval_batches``, ``eval_size``, labels on the device). The loaders of such datasets
return a ``spec.SourceSpec`` that builds it; ``pipeline.data`` applies the run's noise and splits first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

import torch
from torch.utils.data import DataLoader

from alignprune_exp.core.errors import AlignPruneError
from alignprune_exp.data.augment import BatchAugment
from alignprune_exp.data.batches import Batch, LabelledSource


class StreamingData(LabelledSource):
    """Batches read from disk by a DataLoader (workers, pinned memory), normalised on the training device.

    Args:
        train, train_eval, train_strong: the training images with the train / eval / (weak, strong) transforms.
        reference, test: un-augmented evaluation datasets.
        y, y_clean: noisy and clean training labels [n] (LongTensors on ``device``).
        ref_y, test_y: labels of the reference and test datasets.
        mean, std: per-channel normalisation in [0, 1] units.
        num_workers: DataLoader worker processes (0 reads in the main process).
    """

    def __init__(
        self,
        *,
        train,
        train_eval,
        train_strong,
        reference,
        test,
        y,
        y_clean,
        ref_y,
        test_y,
        mean,
        std,
        num_workers: int,
        device: torch.device,
    ):
        self.train, self.train_eval, self.train_strong = train, train_eval, train_strong
        self.reference, self.test = reference, test
        self.y, self.y_clean, self.ref_y, self.test_y = y, y_clean, ref_y, test_y
        self.norm = BatchAugment(mean, std, crop_padding=0, hflip=False)
        self.num_workers, self.device = int(num_workers), torch.device(device)

    def _loader(self, dataset, batches: list[list], seed: int = 0) -> Iterator:
        loader = DataLoader(
            dataset,
            batch_sampler=batches,
            num_workers=self.num_workers,
            collate_fn=getattr(dataset, "collate_fn", None),
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            generator=torch.Generator().manual_seed(seed),
        )
        return _one_line_errors(loader)

    def _to_device(self, x, dataset) -> torch.Tensor:
        """Normalised float batch on the device; encoded batches are decoded there first (``decode=gpu``)."""
        if hasattr(dataset, "decode_on") and not isinstance(x, torch.Tensor):
            return self.norm.normalize(dataset.decode_on(x, self.device))
        return self.norm.normalize(x.to(self.device, non_blocking=True))

    def train_batches(
        self, indices: torch.Tensor, slices: list[slice], generator: torch.Generator, strong: bool = False, dist=None
    ) -> Iterator[Batch]:
        """Augmented batches over ``indices`` in that order; each sample's augmentation is seeded from
        ``generator`` and its position, so results do not depend on the number of workers or ranks.
        With ``dist`` only this rank's part of each global batch is read from disk."""
        base = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
        if dist is not None:
            slices = dist.local_slices(slices)
        order = indices.tolist()
        positions = range(len(order))
        batches = [[(order[p], base + p) for p in positions[sl]] for sl in slices]
        dataset = self.train_strong if strong else self.train
        for sl, (x, _, _) in zip(slices, self._loader(dataset, batches, seed=base)):
            b = indices[sl]
            if strong:
                yield Batch(self._to_device(x[0], dataset), self.y[b], b, self._to_device(x[1], dataset))
            else:
                yield Batch(self._to_device(x, dataset), self.y[b], b)

    def eval_size(self, split: str) -> int:
        return len(self.ref_y if split == "reference" else self.test_y)

    def eval_batches(self, split: str, batch_size: int, dist=None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Normalised, un-augmented (x, y) batches of the ``reference`` or ``test`` split (with ``dist``:
        only this rank's batches of a round-robin split are read)."""
        dataset, y = (self.reference, self.ref_y) if split == "reference" else (self.test, self.test_y)
        chunks = _chunks(len(y), batch_size, dist)
        for rows, (x, _, _) in zip(chunks, self._loader(dataset, chunks)):
            yield self._to_device(x, dataset), y[rows[0] : rows[-1] + 1]

    def train_eval_batches(
        self, batch_size: int, dist=None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Un-augmented (x, noisy y, idx) over the whole training set in index order (with ``dist``: this
        rank's batches)."""
        chunks = _chunks(self.num_samples, batch_size, dist)
        for rows, (x, _, _) in zip(chunks, self._loader(self.train_eval, chunks)):
            idx = torch.arange(rows[0], rows[-1] + 1, device=self.device)
            yield self._to_device(x, self.train_eval), self.y[idx], idx


def _chunks(n: int, size: int, dist=None) -> list[list[int]]:
    """Consecutive row chunks of ``size`` (with ``dist``: only this rank's, round-robin)."""
    chunks = [list(range(i, min(i + size, n))) for i in range(0, n, size)]
    return chunks if dist is None else [c for k, c in enumerate(chunks) if dist.mine(k)]


def _one_line_errors(batches: Iterable) -> Iterator:
    """Re-raise a data error from a worker process as the one-line error it was (workers wrap it in a
    traceback), and stop the workers as soon as iteration ends, breaks or fails (left to the garbage
    collector, an abandoned multi-worker iterator waits seconds per worker)."""
    it = iter(batches)
    try:
        yield from it
    except AlignPruneError as err:
        text = str(err)
        if "\n" not in text:
            raise
        last = [line for line in text.splitlines() if line.strip()][-1]
        raise type(err)(re.sub(r"^[\w.]+Error: ", "", last.strip())) from None
    finally:
        shutdown = getattr(it, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
