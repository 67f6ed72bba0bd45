"""Registered component variants, one small file each, grouped by kind (imported by ablate)."""
