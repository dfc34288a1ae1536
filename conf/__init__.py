"""The Hydra config tree, importable as ``alignprune_exp.conf`` once installed (see pyproject.toml)."""
