"""Accelerator settings of a run: channels-last, torch.compile with a safe fallback, cuDNN autotuning and
fused/foreach optimizer steps. Each is a pure speed choice: none changes what a run computes beyond rounding."""

from __future__ import annotations

import logging
import warnings

import torch
from torch import nn

from alignprune_exp.core.errors import ConfigError

log = logging.getLogger(__name__)

# timm optimizer names whose torch class takes ``fused=True`` (CUDA and, since torch 2.4, CPU).
FUSED_OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")


def _auto_bool(value, name: str, auto: bool) -> bool:
    if value is None or str(value).lower() == "auto":
        return auto
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("true", "false"):
        return text == "true"
    raise ConfigError(f"{name}={value!r} is not one of: auto, true, false")


def has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, (nn.Conv2d, nn.Conv3d)) for m in model.modules())


def memory_format(setting, model: nn.Module, device: torch.device) -> torch.memory_format:
    """``channels_last`` for convolutional models on CUDA under ``auto`` (tensor cores prefer NHWC)."""
    wanted = _auto_bool(setting, "channels_last", device.type == "cuda" and has_conv(model))
    return torch.channels_last if wanted and has_conv(model) else torch.contiguous_format


def configure_backends(device: torch.device, cudnn_benchmark=True) -> None:
    """cuDNN autotuning (input shapes repeat every batch) and TF32 matmuls on CUDA."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = _auto_bool(cudnn_benchmark, "cudnn_benchmark", True)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def optimizer_kwargs(opt_cfg, device: torch.device) -> dict:
    """``fused=True`` for torch optimizers that offer it on CUDA (one kernel per step for all parameters);
    other optimizers keep torch's own default (foreach on CUDA). ``optimizer.fused`` overrides."""
    name = str(opt_cfg.get("opt", "")).lower()
    if "fused" in opt_cfg or name not in FUSED_OPTIMIZERS:
        return {}
    return {"fused": True} if device.type == "cuda" else {}


class GuardedCompile:
    """Calls ``torch.compile(model)`` and falls back to the eager model, with one warning, when compiling
    fails, whether at wrapping or at a first call (missing compiler, unsupported op). The model itself
    is untouched, so its state dict and checkpoints keep their keys."""

    def __init__(self, model: nn.Module, **compile_kwargs):
        self.model, self.compiled, self.failed = model, None, False
        try:
            self.compiled = torch.compile(model, **compile_kwargs)
        except Exception as err:  # noqa: BLE001 - any failure means: run eagerly
            self._fall_back(err)

    def _fall_back(self, err: BaseException) -> None:
        self.failed, self.compiled = True, None
        msg = (
            f"torch.compile failed ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
            "running the eager model"
        )
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
        log.warning(msg)

    def __call__(self, x):
        if self.compiled is not None:
            try:
                return self.compiled(x)
            except Exception as err:  # noqa: BLE001
                self._fall_back(err)
        return self.model(x)


def model_forward(model: nn.Module, compile_setting) -> object:
    """The callable the trainer runs the model through: the model, or a guarded compiled version."""
    if _auto_bool(compile_setting, "compile", False):
        return GuardedCompile(model)
    return model
