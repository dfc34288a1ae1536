"""Run assembly: the only layer below the CLI that reads the config; it builds data, model, scorer, policy and
trainer, drives warm-ups, and runs one session."""
