"""A nested config as the flat parameters trackers take (registers nothing)."""

from __future__ import annotations

from typing import Any


def flat_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted scalar entries of a nested config; lists (post-processing chains, plugins) as text, None left out."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= flat_config(value, f"{path}.")
        elif isinstance(value, bool | int | float | str):
            out[path] = value
        elif value is not None:
            out[path] = str(value)
    return out
