"""Whole-run checkpoints: RunState, the epoch records so far, every RNG, and the epoch callbacks' own state.

``checkpoint.pt`` in the run folder is replaced atomically; it is read back with the restricted loader (only
tensors, numpy arrays and builtins). Restoring it and training on reproduces, bit for bit, the run that was
never interrupted: the epoch records (and so ``metrics.jsonl``) of epochs after the checkpoint are dropped
and recomputed.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np

from alignprune_exp.core.errors import ConfigError
from alignprune_exp.core.safe_load import safe_torch_load
from alignprune_exp.runs.durable import atomic_torch_save

log = logging.getLogger(__name__)

FORMAT = 1


def _rng_state() -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "numpy": {
            "kind": kind,
            "keys": np.asarray(keys),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
    }


def _set_rng_state(sd: dict) -> None:
    n = sd["numpy"]
    np.random.set_state((n["kind"], np.asarray(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = sd["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


class Checkpointer:
    """Saves and restores one run's ``checkpoint.pt``.

    Args:
        run_dir: the run folder.
        trainer: the Trainer whose state, records and last test evaluation are saved.
        run_id: the config's run id, checked on restore so a folder never resumes under another config.
        every: save after every ``every`` epochs (0: only when asked, e.g. on a stop signal).
        parts: extra objects with ``state_dict``/``load_state_dict`` (epoch callbacks such as snapshots).
    """

    def __init__(self, run_dir: str | Path, trainer, run_id: str, every: int = 1, parts: dict | None = None):
        self.path = Path(run_dir) / "checkpoint.pt"
        self.trainer, self.run_id, self.every = trainer, run_id, int(every)
        self.parts = dict(parts or {})
        self.saved_epoch: int | None = None

    def payload(self) -> dict:
        t = self.trainer
        return {
            "format": FORMAT,
            "run_id": self.run_id,
            "state": t.state.state_dict(),
            "history": [dict(r) for r in t.history],
            "last_test": list(t.last_test),
            "rng_host": _rng_state(),
            "parts": {k: p.state_dict() for k, p in self.parts.items()},
        }

    def save(self) -> Path:
        atomic_torch_save(self.payload(), self.path)
        self.saved_epoch = self.trainer.state.epoch
        return self.path

    def on_epoch_end(self, history: list[dict]) -> None:
        """Trainer epoch-end hook: save every ``every`` epochs."""
        if self.every and self.trainer.state.epoch % self.every == 0:
            self.save()

    def restore(self) -> list[dict]:
        """Load ``checkpoint.pt`` into the trainer and parts; returns the epoch records it holds."""
        sd = safe_torch_load(self.path)
        if not isinstance(sd, dict) or sd.get("format") != FORMAT:
            raise ConfigError(f"{self.path} is not a checkpoint of this version: delete it to start the run over")
        if sd["run_id"] != self.run_id:
            raise ConfigError(
                f"{self.path} belongs to another config (run id {sd['run_id']}, this config "
                f"{self.run_id}): resume it with its own overrides, or start a new run"
            )
        t = self.trainer
        t.state.load_state_dict(sd["state"])
        t.history[:] = list(sd["history"])
        t.last_test = tuple(sd["last_test"])
        for key, part in self.parts.items():
            part.load_state_dict(sd["parts"][key])
        _set_rng_state(sd["rng_host"])
        self.saved_epoch = t.state.epoch
        log.info("resumed from %s at epoch %d", self.path, t.state.epoch)
        return t.history

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
