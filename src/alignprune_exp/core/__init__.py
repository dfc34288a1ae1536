"""Foundations every layer may use: error types and exit codes, the process-group identity, safe loading,
device choice and seeding."""
