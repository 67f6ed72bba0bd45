"""Registered paradigms (see ablate.PARADIGMS for the contract)."""
