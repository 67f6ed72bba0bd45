"""No projection."""

from ablate import PROJECTIONS


@PROJECTIONS.register("none")
def none(in_channels: int, out_channels: int) -> None:
    """No learned mapping: student and teacher maps must already have the same channel count."""
    return None
