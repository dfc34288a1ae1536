"""SOP+ (Liu et al. ICML 2022): sparse over-parameterised label-noise modelling as a training criterion.

Spec static_baselines §11 (sources: shengliu66/SOP ``model/loss.py``, kaist-dmlab/Prune4Rel
``robustlearner/sop.py``). Per-sample variables u [N, 1] and v [N, C], indexed by dataset index, move the
network's prediction towards / away from the given label; they have their own plain SGD (momentum 0,
weight decay 0) and sparse gradients, so rows of samples a pruner left out of a batch never change.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from alignprune_exp.core.errors import ConfigError
from alignprune_exp.losses.base import Criterion

EPS = 1e-4


class SOPPlus(Criterion):
    """The SOP+ criterion in the per-sample contract of ``losses/base.py``.

    Per sample i of a batch (Y one-hot noisy labels, z weak-view logits, z' strong-view logits):
        s = clamp(u_i^2 Y, 0, 1); t = clamp(v_i^2 (1 - Y), 0, 1)
        q = clamp(normalize_1(clamp(softmax(z) + s - sg(t), 1e-4)), 1e-4, 1)
        per_sample_i = -sum Y log q  +  ||onehot(argmax z) + s - t - Y||^2  +  lambda_c KL(sg(softmax z) || softmax z')
    and once per batch ``batch_term`` = lambda_b * (-(1/C) sum_c log clamp(mean_i q_ic, 1e-4, 1)).
    The trainer weights and averages ``per_sample`` (the pruner ranks it) and adds ``batch_term``.
    Without batch indices (evaluation) it is plain cross-entropy; without a strong view the consistency
    term is dropped.

    Args:
        num_samples, num_classes: shape of u and v (the whole training set).
        lr_u, lr_v: learning rates of u and v (Prune4ReL CIFAR-10N: 10 and 100; CIFAR-100N: 1 and 100).
        lambda_c: consistency weight (0.9); lambda_b: class-balance weight (0.1); both 0 give plain SOP.
        init_std: u, v ~ Normal(0, init_std) (1e-8).
        seed: seed of the generator drawing the initial u, v.
    """

    needs_strong_view = True
    per_sample_parameters = True  # u, v rows change only where a sample trains: one process only

    def __init__(
        self,
        num_samples: int,
        num_classes: int,
        lr_u: float = 10.0,
        lr_v: float = 100.0,
        lambda_c: float = 0.9,
        lambda_b: float = 0.1,
        init_std: float = 1e-8,
        seed: int = 0,
    ):
        if int(num_samples) < 1 or int(num_classes) < 2:
            raise ConfigError(f"SOP+ needs num_samples >= 1 and num_classes >= 2, got {num_samples}, {num_classes}")
        for name, value in (("lr_u", lr_u), ("lr_v", lr_v), ("lambda_c", lambda_c), ("lambda_b", lambda_b)):
            if float(value) < 0:
                raise ConfigError(f"loss.{name}={value} must be >= 0")
        self.num_samples, self.num_classes = int(num_samples), int(num_classes)
        self.lr_u, self.lr_v = float(lr_u), float(lr_v)
        self.lambda_c, self.lambda_b = float(lambda_c), float(lambda_b)
        self.needs_strong_view = self.lambda_c > 0
        gen = torch.Generator().manual_seed(int(seed))
        self.u = (torch.randn(self.num_samples, 1, generator=gen) * init_std).requires_grad_()
        self.v = (torch.randn(self.num_samples, self.num_classes, generator=gen) * init_std).requires_grad_()
        self._build_optimizer()

    def _build_optimizer(self) -> None:
        self.optimizer = torch.optim.SGD(
            [{"params": [self.u], "lr": self.lr_u}, {"params": [self.v], "lr": self.lr_v}],
            momentum=0.0,
            weight_decay=0.0,
        )

    def _corrections(self, indices: torch.Tensor, onehot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """s (mass added on the label) and t (mass removed elsewhere) of the batch, with sparse gradients."""
        u = F.embedding(indices, self.u, sparse=True)
        v = F.embedding(indices, self.v, sparse=True)
        return (u.pow(2) * onehot).clamp(0, 1), (v.pow(2) * (1 - onehot)).clamp(0, 1)

    def _prediction(self, logits: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        q = (logits.float().softmax(1) + s - t.detach()).clamp(min=EPS)
        return F.normalize(q, p=1, dim=1, eps=EPS).clamp(EPS, 1.0)

    def per_sample(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        indices: torch.Tensor | None = None,
        logits_strong: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """CE_i + MSE_i + lambda_c KL_i per sample (plain cross-entropy when ``indices`` is None)."""
        if indices is None:
            return F.cross_entropy(logits.float(), targets, reduction="none")
        onehot = F.one_hot(targets, self.num_classes).float()
        s, t = self._corrections(indices, onehot)
        q = self._prediction(logits, s, t)
        ce = -(onehot * q.log()).sum(1)
        hard = F.one_hot(logits.detach().argmax(1), self.num_classes).float()
        mse = (hard + s - t - onehot).pow(2).sum(1)
        loss = ce + mse
        if logits_strong is not None and self.lambda_c > 0:
            target = logits.detach().float().softmax(1)
            kl = F.kl_div(logits_strong.float().log_softmax(1), target, reduction="none").sum(1)
            loss = loss + self.lambda_c * kl
        return loss

    def batch_term(self, logits: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor) -> torch.Tensor | float:
        """lambda_b times the cross-entropy of the batch-mean corrected prediction against the uniform prior."""
        if self.lambda_b == 0 or indices is None:
            return 0.0
        onehot = F.one_hot(targets, self.num_classes).float()
        q = self._prediction(logits, *self._corrections(indices, onehot))
        avg = q.mean(0).clamp(EPS, 1.0)
        return self.lambda_b * -(avg.log().mean())

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def step(self) -> None:
        self.optimizer.step()

    def to(self, device) -> SOPPlus:
        """Move u, v (and rebuild their optimizer, which holds no state at momentum 0); returns self."""
        self.u = self.u.detach().to(device).requires_grad_()
        self.v = self.v.detach().to(device).requires_grad_()
        self._build_optimizer()
        return self

    def state_dict(self) -> dict:
        return {"u": self.u.detach().clone(), "v": self.v.detach().clone()}

    def load_state_dict(self, sd: dict) -> None:
        for name in ("u", "v"):
            value, current = sd[name], getattr(self, name)
            if not isinstance(value, torch.Tensor) or value.shape != current.shape:
                raise ValueError(f"state_dict[{name!r}] should have shape {tuple(current.shape)}")
            current.data.copy_(value.to(current.device, current.dtype))
