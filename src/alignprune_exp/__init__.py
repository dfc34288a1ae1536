"""alignprune-exp: dynamic data pruning under label noise, ranked by loss or by the Dynamic Alignment Score."""

from alignprune_exp.config.resolvers import register as _register_resolvers

__version__ = "0.1.0"

_register_resolvers()
