"""OmegaConf resolvers the config tree uses (registered once, on package import)."""

import socket

from omegaconf import OmegaConf


def register() -> None:
    """``${one_minus:${ratio.value}}`` = 1 - ratio: a kept fraction that matches the pruning ratio."""
    if not OmegaConf.has_resolver("one_minus"):
        OmegaConf.register_new_resolver("one_minus", lambda x: 1.0 - float(x))
    if not OmegaConf.has_resolver("hostname"):  # ${hostname:}: per-machine results files on a cluster
        OmegaConf.register_new_resolver("hostname", lambda: socket.gethostname().split(".")[0])
