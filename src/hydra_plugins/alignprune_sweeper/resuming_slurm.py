"""The SLURM launcher (``hydra/launcher=slurm``) with self-resuming jobs.

Every job runs with ``resume=auto`` (unless its overrides set ``resume``), so a job that SLURM requeues
after a pre-emption, or that submitit requeues from its checkpoint hook (the USR2 signal before the time
limit), continues from its latest ``checkpoint.pt``; a relaunched grid skips cells that already finished.
"""

from __future__ import annotations

from typing import Any

try:
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
except ImportError:  # the launchers extra is not installed: nothing to define
    SlurmLauncher = None


def with_resume(overrides: list[str]) -> list[str]:
    """The overrides plus ``resume=auto`` unless they choose ``resume`` themselves."""
    if any(o.lstrip("+~").startswith("resume=") for o in overrides):
        return list(overrides)
    return [*overrides, "resume=auto"]


if SlurmLauncher is not None:

    class ResumingSlurmLauncher(SlurmLauncher):
        """submitit's SLURM launcher whose jobs resume themselves after a requeue."""

        def __call__(self, sweep_overrides: list[str], *args: Any, **kwargs: Any):
            return super().__call__(with_resume(sweep_overrides), *args, **kwargs)

        def checkpoint(self, sweep_overrides: list[str], *args: Any, **kwargs: Any) -> Any:
            """submitit's requeue hook: resubmit this job with ``resume=auto``."""
            return super().checkpoint(with_resume(sweep_overrides), *args, **kwargs)
