"""Deterministic fault injection for the kill/resume and disk-full tests (inactive unless its env vars are set).

``ALIGNPRUNE_TEST_KILL_AT=ref_eval:2`` sends this process SIGKILL the 2nd time it reaches the named point
(``train_batch``, ``ref_eval``, ``ckpt_write``, ``after_summary``, ``after_row``); ``name:N:TERM`` sends
SIGTERM (or any ``SIG*`` name) instead, to test graceful stops. ``ALIGNPRUNE_TEST_FAULT=short_write``
makes results appends write half a row and then fail with ENOSPC, as a full disk does.
"""

from __future__ import annotations

import errno
import os
import signal

_hits: dict[str, int] = {}


def _targets() -> dict[str, tuple[int, str]]:
    spec = os.environ.get("ALIGNPRUNE_TEST_KILL_AT", "")
    out = {}
    for item in filter(None, spec.split(",")):
        name, count, *sig = item.split(":")
        out[name] = (int(count), sig[0] if sig else "KILL")
    return out


def kill_point(name: str) -> None:
    """Mark that execution reached ``name``; signal this process if the env var targets this hit."""
    target = _targets().get(name)
    if target is None:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == target[0]:
        os.kill(os.getpid(), getattr(signal, "SIG" + target[1]))


def active() -> bool:
    return bool(os.environ.get("ALIGNPRUNE_TEST_KILL_AT"))


def os_write(fd: int, data: bytes) -> int:
    """``os.write``, or under ``short_write`` a full disk: half the bytes once, then ENOSPC."""
    if os.environ.get("ALIGNPRUNE_TEST_FAULT") == "short_write":
        if _hits.get("short_write"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        _hits["short_write"] = 1
        return os.write(fd, data[: max(1, len(data) // 2)])
    return os.write(fd, data)


def install(trainer) -> None:
    """Add the ``train_batch`` and ``ref_eval`` points to a trainer (only when a kill point is set)."""
    if not active():
        return
    trainer.batch_callbacks.append(lambda *_: kill_point("train_batch"))
    data = trainer.data
    eval_batches = data.eval_batches

    def eval_batches_with_point(split, *args, **kwargs):
        for i, batch in enumerate(eval_batches(split, *args, **kwargs)):
            yield batch
            if split == "reference" and i == 0:
                kill_point("ref_eval")

    data.eval_batches = eval_batches_with_point
