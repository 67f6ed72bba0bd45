"""Registered datasets (see ablate.DATASETS for the contract)."""
