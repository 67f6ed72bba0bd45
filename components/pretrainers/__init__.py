"""Registered pretrainers (see ablate.PRETRAINERS for the contract)."""
