"""Registered postprocessors (see ablate.POSTPROCESSORS for the contract)."""
