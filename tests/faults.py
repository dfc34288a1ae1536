"""Deterministic fault injection for the kill/resume and disk-full tests, from outside the product.

Runs train.py's entry point (``alignprune_exp.cli.main``) with faults installed on the product's public seams:

    python tests/faults.py <train.py args>           # also as torchrun's script: torchrun ... tests/faults.py ...
    python -m tests.faults <train.py args>
    tests.faults.main(argv)                          # in a process of its own (tests/cli_fork.py)

What it injects is read from the environment (nothing is patched when neither variable is set):

``ALIGNPRUNE_TEST_KILL_AT=ref_eval:2`` sends this process SIGKILL the 2nd time it reaches the named point;
``name:N:TERM`` sends SIGTERM (or any ``SIG*`` name) instead, to test graceful stops; several points are
comma-separated. The points and the seams they hang on:

- ``train_batch``: every trained batch (a batch callback added to every ``Trainer`` after its ``__init__``);
- ``ref_eval``: after the first batch of each evaluation of the ``reference`` split (``eval_batches`` of
  ``InMemoryData`` and ``StreamingData``);
- ``ckpt_write``: halfway through writing ``checkpoint.pt`` (``runs.durable._os_write``: the first write into
  the checkpoint's temporary file writes half its bytes, then the point is hit);
- ``after_summary``: after a summary with a final status is written (``RunRecorder.write_summary``), before
  the results row;
- ``after_row``: after the results row is appended (``RunRecorder.append_row``).

``ALIGNPRUNE_TEST_FAULT=short_write`` makes results appends write half a row and then fail with ENOSPC, as a
full disk does (``runs.durable._os_write``, for results files ``runs*.csv`` opened to append).
``ALIGNPRUNE_TEST_FAULT=enospc:<pattern>`` fills the disk for the files whose path matches the ``fnmatch``
pattern (a temporary file ``<name>.<pid>.tmp`` matches as ``<name>``): the first write into such a file takes
half its bytes, every later one fails with ENOSPC (``runs.durable._os_write``). E.g. ``enospc:*/checkpoint.pt``,
``enospc:*/.run_index/*.json``, ``enospc:*/summary.json``.
"""

from __future__ import annotations

import errno
import fcntl
import fnmatch
import functools
import os
import re
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KILL_AT, FAULT = "ALIGNPRUNE_TEST_KILL_AT", "ALIGNPRUNE_TEST_FAULT"
POINTS = ("train_batch", "ref_eval", "ckpt_write", "after_summary", "after_row")
FAULTS = ("short_write", "enospc:<pattern>")
CHECKPOINT_TMP = re.compile(r"checkpoint\.pt\.\d+\.tmp")  # atomic_write_bytes' temp file of checkpoint.pt
TMP_SUFFIX = re.compile(r"\.\d+\.tmp$")

_targets: dict[str, tuple[int, str]] = {}
_hits: dict[str, int] = {}
_installed = False


def parse_kill_at(spec: str) -> dict[str, tuple[int, str]]:
    """``"ref_eval:2,train_batch:16:TERM"`` -> ``{"ref_eval": (2, "KILL"), "train_batch": (16, "TERM")}``."""
    out = {}
    for item in filter(None, spec.split(",")):
        name, count, *sig = item.split(":")
        if name not in POINTS:
            raise ValueError(f"{KILL_AT}: unknown point {name!r} (one of {', '.join(POINTS)})")
        out[name] = (int(count), sig[0] if sig else "KILL")
    return out


def kill_point(name: str) -> None:
    """Mark that execution reached ``name``; signal this process if the targets name this hit."""
    target = _targets.get(name)
    if target is None:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == target[0]:
        os.kill(os.getpid(), getattr(signal, "SIG" + target[1]))


def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


def torn_checkpoint_writer(write):
    """``write`` that, on the first write into a checkpoint's temporary file, writes half the bytes and then
    hits ``ckpt_write`` (the rest follows unless that hit kills the process)."""

    def _write(fd: int, data: bytes) -> int:
        if (
            len(data) > 1
            and CHECKPOINT_TMP.fullmatch(os.path.basename(_fd_path(fd)))
            and os.lseek(fd, 0, os.SEEK_CUR) == 0
        ):
            n = write(fd, data[: len(data) // 2])
            kill_point("ckpt_write")
            return n
        return write(fd, data)

    return _write


def short_writer(write=os.write):
    """``write`` under a full disk for results files (``runs*.csv``) opened to append (``append_checked``): half the
    bytes once, then ENOSPC on every later append. Other writes (``metrics.jsonl`` appends too) pass through."""
    state = {"hit": False}

    def _write(fd: int, data: bytes) -> int:
        if not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND or not fnmatch.fnmatch(
            os.path.basename(_fd_path(fd)), "runs*.csv"
        ):
            return write(fd, data)
        if state["hit"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        state["hit"] = True
        return write(fd, data[: max(1, len(data) // 2)])

    return _write


def enospc_writer(pattern: str, write=os.write):
    """``write`` under a full disk for the files matching ``pattern`` (their temporary files included): half
    the bytes of the first write into one, then ENOSPC. Other files' writes pass through."""
    state = {"hit": False}

    def _write(fd: int, data: bytes) -> int:
        if not fnmatch.fnmatch(TMP_SUFFIX.sub("", _fd_path(fd)), pattern):
            return write(fd, data)
        if state["hit"] or len(data) < 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        state["hit"] = True
        return write(fd, data[: len(data) // 2])

    return _write


def _wrap_eval_batches(cls) -> None:
    original = cls.eval_batches

    @functools.wraps(original)
    def eval_batches(self, split, *args, **kwargs):
        for i, batch in enumerate(original(self, split, *args, **kwargs)):
            yield batch
            if split == "reference" and i == 0:
                kill_point("ref_eval")

    cls.eval_batches = eval_batches


def install(environ=None) -> None:
    """Patch the seams the environment's kill points and fault need (once per process)."""
    global _installed
    environ = os.environ if environ is None else environ
    targets = parse_kill_at(environ.get(KILL_AT, ""))
    fault = environ.get(FAULT, "")
    enospc = fault.split(":", 1)[1] if fault.startswith("enospc:") else None
    if fault and fault != "short_write" and not enospc:
        raise ValueError(f"{FAULT}: unknown fault {fault!r} (one of {', '.join(FAULTS)})")
    if _installed:
        raise RuntimeError("tests.faults.install() ran twice in this process")
    _installed = True
    _targets.clear()
    _targets.update(targets)
    _hits.clear()

    if "train_batch" in targets:
        from alignprune_exp.train.trainer import Trainer

        init = Trainer.__init__

        @functools.wraps(init)
        def __init__(self, *args, **kwargs):
            init(self, *args, **kwargs)
            self.batch_callbacks.append(lambda *_: kill_point("train_batch"))

        Trainer.__init__ = __init__

    if "ref_eval" in targets:
        from alignprune_exp.data.batches import InMemoryData
        from alignprune_exp.data.streaming import StreamingData

        for cls in (InMemoryData, StreamingData):
            if "eval_batches" not in vars(cls):  # an inherited one is wrapped once, where it is defined
                raise RuntimeError(f"{cls.__name__} no longer defines eval_batches: move the ref_eval seam")
            _wrap_eval_batches(cls)

    if "ckpt_write" in targets or fault == "short_write" or enospc:
        from alignprune_exp.runs import durable

        write = durable._os_write
        if "ckpt_write" in targets:
            write = torn_checkpoint_writer(write)
        if fault == "short_write":
            write = short_writer(write)
        if enospc:
            write = enospc_writer(enospc, write)
        durable._os_write = write

    if "after_summary" in targets or "after_row" in targets:
        from alignprune_exp.runs.records import RunRecorder
        from alignprune_exp.runs.resume import FINAL_STATUSES

        write_summary, append_row = RunRecorder.write_summary, RunRecorder.append_row

        @functools.wraps(write_summary)
        def write_summary_then_point(self, summary, *args, **kwargs):
            out = write_summary(self, summary, *args, **kwargs)
            if summary.get("status") in FINAL_STATUSES:
                kill_point("after_summary")
            return out

        @functools.wraps(append_row)
        def append_row_then_point(self, *args, **kwargs):
            out = append_row(self, *args, **kwargs)
            kill_point("after_row")
            return out

        RunRecorder.write_summary, RunRecorder.append_row = write_summary_then_point, append_row_then_point


def main(argv: list[str] | None = None) -> None:
    """Install the faults, then run train.py's entry point with ``argv`` (default: this command's arguments)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    install()
    from alignprune_exp.cli import main as cli_main

    sys.argv = [str(ROOT / "train.py"), *argv]
    cli_main()


if __name__ == "__main__":
    # As a script (python tests/faults.py, torchrun's script) sys.path[0] is tests/ itself: replace it by this
    # checkout's src/ and root, so the product under test is this checkout's whatever is installed.
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [str(ROOT / "src"), str(ROOT)] + [p for p in sys.path if os.path.abspath(p or ".") != here]
    main()
