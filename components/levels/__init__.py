"""Registered levels (see ablate.LEVELS for the contract)."""
