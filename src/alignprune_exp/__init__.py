"""alignprune-exp: dynamic data pruning under label noise, ranked by loss or by the Dynamic Alignment Score."""

__version__ = "0.1.0"
