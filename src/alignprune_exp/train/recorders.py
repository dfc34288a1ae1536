"""What training leaves per sample: the warm-up record schema and the batch callbacks that fill it.

``WarmupRecorder`` collects the given-label probability (float16 [epochs, n]) and forgetting events of every
presentation; the warm-up run (``pipeline.warmup``) turns it into a ``WarmupRecord`` for static pruners, and a
``DynamicsRecorder`` rides along Full-training runs to save ``dynamics.pt`` ({"probs", "labels",
"forgetting"}), so Dyn-Unc / DUAL scores and trajectory plots can be computed from any Full-training run.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import torch

from alignprune_exp.runs.durable import atomic_torch_save


@dataclass
class WarmupRecord:
    """What a warm-up run leaves for the selectors; every per-sample tensor is indexed by dataset index.

    Attributes:
        labels: int64 [n] noisy labels the warm-up trained on.
        probs: float16 (or float32) [E, n] training-time softmax probability of the given label, per epoch.
        forgetting: int64 [n] learned -> forgotten transitions over all presentations (Toneva et al.).
        ever_learned: bool [n] whether any presentation classified the sample correctly.
        logits: float32 [n, C] final eval-mode logits (un-augmented).
        features: [n, d] final eval-mode penultimate features (float32 or float16).
        losses: float32 [n] final eval-mode cross-entropy against the noisy label.
        logits_strong, features_strong: the same on one seeded strong view (None when the data has none).
    """

    labels: torch.Tensor
    probs: torch.Tensor
    forgetting: torch.Tensor
    ever_learned: torch.Tensor
    logits: torch.Tensor
    features: torch.Tensor
    losses: torch.Tensor
    logits_strong: torch.Tensor | None = None
    features_strong: torch.Tensor | None = None

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return self.logits.shape[1]

    @property
    def num_epochs(self) -> int:
        return self.probs.shape[0]

    def to(self, device) -> WarmupRecord:
        return WarmupRecord(**{k: v.to(device) for k, v in self.tensors().items()})

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor the record holds (the optional strong-view ones only when present)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def check(self) -> None:
        """Raise ValueError unless every tensor has the shape and dtype the selectors rely on."""
        n, e, c = self.num_samples, self.num_epochs, self.num_classes
        d = self.features.shape[-1]
        expected = {
            "labels": ((n,), {torch.int64}),
            "probs": ((e, n), {torch.float32, torch.float16}),
            "forgetting": ((n,), {torch.int64}),
            "ever_learned": ((n,), {torch.bool}),
            "logits": ((n, c), {torch.float32}),
            "losses": ((n,), {torch.float32}),
            "features": ((n, d), {torch.float32, torch.float16}),
            "logits_strong": ((n, c), {torch.float32}),
            "features_strong": ((n, d), {torch.float32, torch.float16}),
        }
        if (self.logits_strong is None) != (self.features_strong is None):
            raise ValueError("logits_strong and features_strong come together")
        for name, (shape, dtypes) in expected.items():
            t = getattr(self, name)
            if t is None:
                continue
            if tuple(t.shape) != shape or t.dtype not in dtypes:
                raise ValueError(f"{name}: {t.dtype} {tuple(t.shape)}, expected {shape}")
        if not (torch.isfinite(self.logits).all() and torch.isfinite(self.probs).all()):
            raise ValueError("non-finite logits or probabilities")


class WarmupRecorder:
    """Batch callback collecting the given-label probability (float16) and forgetting events of every presentation.

    Also used by Full-training runs (``DynamicsRecorder`` saves ``dynamics.pt``), so their trajectories are on disk too.
    """

    def __init__(self, labels: torch.Tensor, epochs: int):
        n, dev = len(labels), labels.device
        self.probs = torch.zeros(epochs, n, device=dev, dtype=torch.float16)
        self.forgetting = torch.zeros(n, dtype=torch.int64, device=dev)
        self.last_correct = torch.zeros(n, dtype=torch.bool, device=dev)
        self.ever_learned = torch.zeros(n, dtype=torch.bool, device=dev)

    def __call__(self, epoch: int, idx: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        logits = logits.float()
        if epoch < len(self.probs):
            self.probs[epoch, idx] = logits.softmax(1).gather(1, y[:, None]).squeeze(1).to(self.probs.dtype)
        correct = logits.argmax(1) == y
        self.forgetting[idx] += (self.last_correct[idx] & ~correct).long()
        self.last_correct[idx] = correct
        self.ever_learned[idx] |= correct


class DynamicsRecorder(WarmupRecorder):
    """A ``WarmupRecorder`` that saves the epochs the run actually ran."""

    def __init__(self, labels: torch.Tensor, epochs: int):
        super().__init__(labels, epochs)
        self.labels = labels

    def state_dict(self) -> dict:
        """What a resumed run needs to keep recording where it stopped (a checkpoint part)."""
        return {
            "probs": self.probs,
            "forgetting": self.forgetting,
            "last_correct": self.last_correct,
            "ever_learned": self.ever_learned,
        }

    def load_state_dict(self, sd: dict) -> None:
        for key, value in sd.items():
            getattr(self, key).copy_(value)

    def save(self, path: Path, epochs_run: int) -> None:
        atomic_torch_save(
            {
                "probs": self.probs[:epochs_run].cpu(),
                "labels": self.labels.long().cpu(),
                "forgetting": self.forgetting.cpu(),
            },
            path,
        )
