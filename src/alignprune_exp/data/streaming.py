"""Sources for datasets too large to hold in memory: images stream from disk through a DataLoader.

``StreamingData`` implements the batch-source interface of ``source.InMemoryData`` (``train_batches``,
``eval_batches``, ``train_eval_batches``, ``eval_size``, labels on the device). ``SourceSpec`` is what a
loader of such a dataset returns; ``build_streaming_data`` applies the run's label noise and reference
selection to it through the same code paths as the in-memory datasets (``cli.build_data``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

from alignprune_exp.core.errors import AlignPruneError, ConfigError
from alignprune_exp.reference.selectors import ReferenceContext
from alignprune_exp.config.instantiate import instantiate
from alignprune_exp.data.augment import BatchAugment
from alignprune_exp.data.batches import Batch, LabelledSource
from alignprune_exp.data.splits import make_splits, subset_indices


@dataclass(frozen=True)
class Part:
    """Rows of one split of a spec (``train``, ``reference`` or ``test``) with the labels to use for them."""

    split: str
    rows: np.ndarray
    labels: np.ndarray


class SourceSpec:
    """A dataset that builds its own batch source (streamed images, precomputed features).

    Subclasses provide: ``name``, ``num_classes``, ``input_shape``, ``source`` (where it was read from),
    ``train_y`` (training labels), ``labels_are_clean`` (False when those are real noisy labels with no
    clean version, as WebVision's and Clothing-1M's), ``test_y`` and ``test_name`` (the official test split),
    ``reference_y`` and ``reference_name`` (an official clean validation split used as the reference set,
    paper Sec. 4.1, or None to draw the reference from training), and ``make_source``.
    """

    reference_y: np.ndarray | None = None
    reference_name: str | None = None
    labels_are_clean: bool = True

    def make_source(self, train: Part, train_noisy: np.ndarray, reference: Part, test: Part,
                    device: torch.device):
        raise NotImplementedError


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

    def __init__(self, *, train, train_eval, train_strong, reference, test, y, y_clean, ref_y, test_y,
                 mean, std, num_workers: int, device: torch.device):
        self.train, self.train_eval, self.train_strong = train, train_eval, train_strong
        self.reference, self.test = reference, test
        self.y, self.y_clean, self.ref_y, self.test_y = y, y_clean, ref_y, test_y
        self.norm = BatchAugment(mean, std, crop_padding=0, hflip=False)
        self.num_workers, self.device = int(num_workers), torch.device(device)

    def _loader(self, dataset, batches: list[list], seed: int = 0) -> Iterator:
        loader = DataLoader(dataset, batch_sampler=batches, num_workers=self.num_workers,
                            collate_fn=getattr(dataset, "collate_fn", None),
                            pin_memory=self.device.type == "cuda", persistent_workers=False,
                            generator=torch.Generator().manual_seed(seed))
        return _one_line_errors(loader)

    def _to_device(self, x, dataset) -> torch.Tensor:
        """Normalised float batch on the device; encoded batches are decoded there first (``decode=gpu``)."""
        if hasattr(dataset, "decode_on") and not isinstance(x, torch.Tensor):
            return self.norm.normalize(dataset.decode_on(x, self.device))
        return self.norm.normalize(x.to(self.device, non_blocking=True))

    def train_batches(self, indices: torch.Tensor, slices: list[slice], generator: torch.Generator,
                      strong: bool = False, dist=None) -> Iterator[Batch]:
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
            yield self._to_device(x, dataset), y[rows[0]:rows[-1] + 1]

    def train_eval_batches(self, batch_size: int,
                           dist=None) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
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


class _OfficialReference:
    """Stands in for the reference selector in ``make_splits`` when the reference is an official split:
    nothing is held out of the training images."""

    label_source = "clean"

    def resolve_size(self, default_size: int) -> int:
        return 0

    def select(self, pool: np.ndarray, size: int, context=None) -> np.ndarray:
        return pool[:0]


def build_streaming_data(cfg, spec: SourceSpec, device: torch.device):
    """Noise, reference and test splits for a ``SourceSpec``, then its source; returns (source, info) like
    ``cli.build_data``.

    The noise injector and the reference selector come from the config as for every dataset. A clean
    reference (``reference=clean_val``) is the dataset's official validation split when it has one (paper
    Sec. 4.1; ``reference.size`` / ``reference.fraction`` take a random part of it, by ``split_seed``);
    otherwise it is drawn from the training images by ``data.splits.make_splits``.
    """
    clean = spec.train_y
    noisy = instantiate(cfg.noise).apply(clean, num_classes=spec.num_classes, dataset=spec.name,
                                         data_dir=str(cfg.data_dir), seed=int(cfg.noise_seed))
    reference = instantiate(cfg.reference)
    official = spec.reference_y is not None and reference.label_source == "clean"
    if not spec.labels_are_clean and cfg.test_split == "holdout":
        raise ConfigError(f"{spec.name}'s training labels are real noisy labels with no clean version, so "
                          "test_split=holdout cannot draw a clean test set: use test_split=official")
    if not spec.labels_are_clean and reference.label_source == "clean" and not official:
        raise ConfigError(f"{spec.name} has no clean training labels to draw a clean reference set from: "
                          "use reference=clean_val with the official validation split, or reference=noisy_train")
    context = ReferenceContext(noisy_labels=noisy, clean_labels=clean,
                               warmup=lambda pool: _pool_warmup(cfg, spec, noisy, pool, device))
    splits = make_splits(len(clean), reference=_OfficialReference() if official else reference,
                         test_split=cfg.test_split, holdout_size=cfg.holdout_size, seed=int(cfg.split_seed),
                         context=context, official_test_size=None if spec.test_y is None else len(spec.test_y))
    if official:
        n_ref = reference.resolve_size(len(spec.reference_y))
        if n_ref > len(spec.reference_y):
            raise ConfigError(f"reference.size={n_ref} exceeds the {len(spec.reference_y)} images of "
                              f"{spec.reference_name}; lower reference.size")
        rows = np.sort(np.random.default_rng(int(cfg.split_seed)).permutation(len(spec.reference_y))[:n_ref])
        ref = Part("reference", rows, spec.reference_y[rows])
        ref_name = spec.reference_name
    else:
        ref_labels = clean if reference.label_source == "clean" else noisy
        ref = Part("train", splits.reference, ref_labels[splits.reference])
        ref_name = f"{len(splits.reference)} training samples ({reference.label_source} labels)"
    if splits.holdout_test is not None:
        test = Part("train", splits.holdout_test, clean[splits.holdout_test])
        test_name = f"{len(splits.holdout_test)} held-out training samples (clean labels)"
    else:
        test = Part("test", np.arange(len(spec.test_y)), spec.test_y)
        test_name = spec.test_name
    tr = subset_indices(splits.train, cfg.get("train_subset"), int(cfg.split_seed))
    n_ref = len(ref.rows)
    keep = reference.eval_rows(n_ref, int(cfg.split_seed))  # the images DAS's per-epoch mean reads
    ref = Part(ref.split, ref.rows[keep], ref.labels[keep])
    data = spec.make_source(Part("train", tr, clean[tr]), noisy[tr], ref, test, device)
    info = {"dataset_source": spec.source, "num_classes": spec.num_classes, "input_shape": tuple(spec.input_shape),
            "n_train": len(tr), "n_reference": n_ref, "n_reference_eval": len(ref.rows), "n_test": len(test.rows),
            "test_split": cfg.test_split, "test_set": test_name, "reference_set": ref_name,
            "noise_rate": float(np.mean(noisy[tr] != clean[tr])) if spec.labels_are_clean else float("nan"),
            "reference_noise_rate": _reference_noise_rate(spec, ref, clean),
            "reference": reference.describe()}
    return data, info


def _pool_warmup(cfg, spec: SourceSpec, noisy: np.ndarray, pool: np.ndarray, device: torch.device):
    """Warm-up record of a fresh model trained on ``pool`` (noisy labels), for pseudo-clean reference selectors."""
    from alignprune_exp.train.warmup import run_warmup

    pool = np.sort(pool)
    empty = Part("train", pool[:0], spec.train_y[pool[:0]])
    data = spec.make_source(Part("train", pool, spec.train_y[pool]), noisy[pool], empty, empty, device)
    return run_warmup(cfg, data, num_classes=spec.num_classes, input_shape=tuple(spec.input_shape),
                      device=device, cache_key_extra={"pool": pool}, seed=int(cfg.split_seed))


def _reference_noise_rate(spec: SourceSpec, ref: Part, clean: np.ndarray) -> float:
    """Share of wrong reference labels: 0 for an official clean split, NaN where the truth is unknown."""
    if ref.split == "reference":
        return 0.0
    if not spec.labels_are_clean or not len(ref.rows):
        return float("nan")
    return float(np.mean(ref.labels != clean[ref.rows]))
