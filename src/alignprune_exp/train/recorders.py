"""Full-training runs keep their training dynamics: the given-label probability of every sample, every epoch.

The same recorder the warm-up uses (float16 [epochs, n]) rides along a ``pruner=full`` run and is saved as
``dynamics.pt`` in its run folder ({"probs", "labels", "forgetting"}), so Dyn-Unc / DUAL scores and
trajectory plots can be computed from any Full-training run.
"""

from __future__ import annotations

from pathlib import Path

import torch

from alignprune_exp.pruning.full import FullData
from alignprune_exp.train.warmup import WarmupRecorder


class DynamicsRecorder(WarmupRecorder):
    """A ``WarmupRecorder`` that saves the epochs the run actually ran."""

    def __init__(self, labels: torch.Tensor, epochs: int):
        super().__init__(labels, epochs)
        self.labels = labels

    def state_dict(self) -> dict:
        """What a resumed run needs to keep recording where it stopped (a checkpoint part)."""
        return {"probs": self.probs, "forgetting": self.forgetting, "last_correct": self.last_correct,
                "ever_learned": self.ever_learned}

    def load_state_dict(self, sd: dict) -> None:
        for key, value in sd.items():
            getattr(self, key).copy_(value)

    def save(self, path: Path, epochs_run: int) -> None:
        torch.save({"probs": self.probs[:epochs_run].cpu(), "labels": self.labels.long().cpu(),
                    "forgetting": self.forgetting.cpu()}, path)


def record_dynamics(trainer, cfg) -> DynamicsRecorder | None:
    """Attach a recorder to a Full-training run's trainer (None for every other policy)."""
    if type(trainer.state.policy) is not FullData:
        return None
    recorder = DynamicsRecorder(trainer.data.y, int(cfg.epochs))  # full data: exactly ``epochs`` epochs
    trainer.batch_callbacks.append(recorder)
    return recorder
