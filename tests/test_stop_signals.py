"""A stop signal is only recorded; the run drops its epoch at the next batch once the grace period is over."""

from __future__ import annotations

import os
import signal

import pytest

from alignprune_exp.core.errors import RunInterrupted
from alignprune_exp.runs import stop_signals
from alignprune_exp.runs.stop_signals import StopRequest, StopSignals


def test_signal_is_recorded_then_stops_at_a_batch_after_the_grace(monkeypatch):
    monkeypatch.setattr(stop_signals, "STOP", StopRequest())
    before = signal.getsignal(signal.SIGUSR1)
    with StopSignals(grace_s=3600) as stop:
        stop.check_batch()  # nothing requested: training goes on
        os.kill(os.getpid(), signal.SIGUSR1)  # would end the process without the handler
        assert stop_signals.STOP.signal_name == "SIGUSR1"
        stop.check_batch()  # within the grace period: the epoch may still finish (then a checkpoint)
        os.kill(os.getpid(), signal.SIGUSR1)  # a second signal: stop now
        with pytest.raises(RunInterrupted, match="SIGUSR1"):
            stop.check_batch()
        with pytest.raises(RunInterrupted):
            stop.raise_if_requested()  # and no further cell of this process starts
    assert signal.getsignal(signal.SIGUSR1) == before


def test_zero_grace_stops_at_the_next_batch(monkeypatch):
    monkeypatch.setattr(stop_signals, "STOP", StopRequest())
    with StopSignals(grace_s=0) as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(RunInterrupted, match="SIGTERM"):
            stop.check_batch()
