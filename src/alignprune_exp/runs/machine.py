"""The CPU a result's float arithmetic depends on: rows reproduce bit for bit only on the same kind of machine.

Float kernels (oneDNN convolutions, MKL matrix products, vectorised reductions) pick code paths by the CPU's
instruction sets, so the same command on another CPU differs in the last bits and, over a long run, in the
final accuracy. ``machine_fingerprint`` names what decides those paths.
"""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path

import torch


def _cpuinfo(key: str) -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip() == key:
                return value.strip()
    except OSError:
        pass
    return ""


def machine_fingerprint() -> dict[str, str]:
    """CPU model, instruction-set flags (hashed), torch's CPU kernel level and torch version."""
    flags = " ".join(sorted(_cpuinfo("flags").split()))
    return {
        "arch": platform.machine(),
        "cpu": _cpuinfo("model name") or platform.processor(),
        "cpu_flags_sha256": hashlib.sha256(flags.encode()).hexdigest()[:16] if flags else "",
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
    }
