"""Registered distances (see ablate.DISTANCES for the contract)."""
