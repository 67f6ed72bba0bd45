"""Registered projections (see ablate.PROJECTIONS for the contract)."""
