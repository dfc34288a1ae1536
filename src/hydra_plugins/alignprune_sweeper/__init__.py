"""Hydra plugin package of alignprune-exp: the ``cells`` sweeper (``hydra/sweeper=cells``)."""
