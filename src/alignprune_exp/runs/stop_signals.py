"""Graceful stops on SIGTERM, SIGUSR1 (SLURM pre-emption / time limit) and SIGINT (Ctrl-C).

The handler only records the request. The run then stops at the end of the current epoch, after writing a
checkpoint, or, when that epoch outlasts ``grace_s`` (or a second signal arrives), at the next batch
boundary, keeping the latest checkpoint already on disk. A request stays set for the rest of the process,
so the remaining cells of a sweep in this process do not start either.
"""

from __future__ import annotations

import signal
import threading
import time

from alignprune_exp.core.errors import RunInterrupted

SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGUSR1", "SIGINT") if hasattr(signal, n))


class StopRequest:
    """Process-wide record of a stop signal."""

    def __init__(self):
        self.signal_name: str | None = None
        self.at: float = 0.0
        self.force = False

    def handle(self, signum, _frame=None) -> None:
        if self.signal_name is not None:
            self.force = True
            return
        self.signal_name, self.at = signal.Signals(signum).name, time.monotonic()

    @property
    def requested(self) -> bool:
        return self.signal_name is not None


STOP = StopRequest()


class StopSignals:
    """Context manager installing the handlers (main thread only) and restoring the previous ones."""

    def __init__(self, grace_s: float = 20.0):
        self.grace_s = float(grace_s)
        self.previous: dict = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self.previous[sig] = signal.signal(sig, STOP.handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous.clear()

    def check_batch(self, *_args) -> None:
        """Trainer batch callback: abandon the epoch once the grace period is over (or on a second signal)."""
        if STOP.requested and (STOP.force or time.monotonic() - STOP.at > self.grace_s):
            raise RunInterrupted(STOP.signal_name)

    @staticmethod
    def raise_if_requested() -> None:
        if STOP.requested:
            raise RunInterrupted(STOP.signal_name)
