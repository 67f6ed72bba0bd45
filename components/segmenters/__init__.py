"""Registered segmenters for trial stage 3 (see ablate.SEGMENTERS for the contract)."""
