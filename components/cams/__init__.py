"""Registered cams (see ablate.CAMS for the contract)."""
