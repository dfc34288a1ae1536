"""Objects built from config nodes with a ``_target_``."""

from __future__ import annotations

from hydra.errors import InstantiationException
from hydra.utils import instantiate as _instantiate

from alignprune_exp.core.errors import AlignPruneError


def instantiate(node, **kwargs):
    """Build an object from a config node with a ``_target_`` (one wrapper, ready for Hydra 1.4's allow-list).

    Our own input errors raised inside a target are re-raised unwrapped, so the CLI can print them as one line.
    """
    try:
        return _instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        while cause is not None and not isinstance(cause, AlignPruneError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise
