"""The Scorer contract: per-sample losses in, one ranking score per sample out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch

from alignprune_exp.core.errors import ConfigError


def last_occurrence(indices: torch.Tensor) -> torch.Tensor:
    """Positions of the last occurrence of each distinct value of a 1-D tensor.

    Indexed writes with repeated indices are nondeterministic on CUDA; writing only these
    positions makes "last one wins" hold on every device.
    """
    sorted_idx, order = torch.sort(indices, stable=True)
    is_last = torch.ones_like(sorted_idx, dtype=torch.bool)
    is_last[:-1] = sorted_idx[1:] != sorted_idx[:-1]
    return order[is_last]


def load_tensor(sd: dict[str, Any], key: str, like: torch.Tensor) -> torch.Tensor:
    """A copy of ``sd[key]`` on ``like``'s device, checked against ``like``'s dtype and shape."""
    value = sd[key]
    if not isinstance(value, torch.Tensor) or value.dtype != like.dtype or value.shape != like.shape:
        raise ValueError(
            f"state_dict[{key!r}] should be a {like.dtype} tensor of shape {tuple(like.shape)}, "
            f"got {getattr(value, 'dtype', type(value))} {tuple(getattr(value, 'shape', ()))}"
        )
    return value.to(like.device).clone()


class Scorer(ABC):
    """Turns per-sample training losses observed each epoch into one ranking score per sample.

    Higher score = keep: policies prune LOW scores. Every scorer also tracks the last observed
    loss of each sample (for diagnostics) through ``last_losses()``.

    Args:
        num_samples: size of the training set; ``observe`` indices lie in [0, num_samples).
        unobserved_loss: value ``last_losses()`` reports for samples never observed.
    """

    needs_reference: bool = False  # True if the trainer must call observe_reference each epoch

    @property
    def ranks_by_cold_start(self) -> bool:
        """True while ``scores()`` is a cold-start stand-in (e.g. the last loss) rather than the scorer's own
        score, so run figures can tell the scorer's epochs from the stand-in's; False unless a scorer has one."""
        return False

    def __init__(self, num_samples: int, unobserved_loss: float = 0.0) -> None:
        if int(num_samples) < 1:
            raise ConfigError(f"num_samples must be >= 1, got {num_samples}: check the dataset size")
        self.num_samples = int(num_samples)
        self._last_loss = torch.full((self.num_samples,), float(unobserved_loss))
        self._observed = torch.zeros(self.num_samples, dtype=torch.bool)

    @property
    def device(self) -> torch.device:
        """Device holding the scorer's tensors."""
        return self._last_loss.device

    def observe(self, indices: torch.Tensor, losses: torch.Tensor, epoch: int) -> None:
        """Record the losses of samples trained this epoch.

        May be called per batch or once per epoch. If an index repeats within one call, its last
        loss wins.

        Args:
            indices: int tensor [m] of sample indices.
            losses: per-sample losses [m] (reduction='none'); detached here.
            epoch: 0-based epoch the losses were observed at.
        """
        if int(epoch) < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        indices = indices.detach().reshape(-1).to(self.device, torch.int64)
        losses = losses.detach().reshape(-1).to(self.device, torch.float32)
        if indices.numel() != losses.numel():
            raise ValueError(f"got {indices.numel()} indices but {losses.numel()} losses")
        keep = last_occurrence(indices)
        indices, losses = indices[keep], losses[keep]
        self._last_loss[indices] = losses
        self._observed[indices] = True
        self._update(indices, losses, int(epoch))

    def _update(self, indices: torch.Tensor, losses: torch.Tensor, epoch: int) -> None:
        """Subclass hook: ``indices`` are distinct int64 and ``losses`` float32, on ``device``."""

    def observe_reference(self, epoch: int, mean_loss: float) -> None:
        """Record the reference set's mean loss at ``epoch``; no-op unless ``needs_reference``."""

    @abstractmethod
    def scores(self) -> torch.Tensor:
        """Float32 [num_samples] ranking scores on ``device`` (treat as read-only)."""

    def last_losses(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(last observed loss float32 [n], observed bool [n]); unobserved ones hold the init."""
        return self._last_loss.clone(), self._observed.clone()

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to restore the scorer exactly (tensors and primitives only)."""
        return {
            "num_samples": self.num_samples,
            "last_loss": self._last_loss.clone(),
            "observed": self._observed.clone(),
        }

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Restore from ``state_dict()`` output; tensors land on the scorer's current device."""
        if int(sd["num_samples"]) != self.num_samples:
            raise ValueError(f"state is for {sd['num_samples']} samples but this scorer has {self.num_samples}")
        self._last_loss = load_tensor(sd, "last_loss", self._last_loss)
        self._observed = load_tensor(sd, "observed", self._observed)

    def to(self, device: torch.device | str) -> Scorer:
        """Move all state to ``device``; returns self."""
        self._last_loss = self._last_loss.to(device)
        self._observed = self._observed.to(device)
        return self
