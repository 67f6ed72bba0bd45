"""Registered metrics (see ablate.METRICS for the contract)."""
