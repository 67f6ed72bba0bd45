"""Registered heads (see ablate.HEADS for the contract)."""
