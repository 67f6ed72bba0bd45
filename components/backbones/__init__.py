"""Registered backbones (see ablate.BACKBONES for the contract)."""
