"""Two-layer MLP projection."""

from torch import nn

from ablate import PROJECTIONS


@PROJECTIONS.register("mlp")
def mlp(in_channels: int, out_channels: int, hidden: int = 256) -> nn.Module:
    """Per-location two-layer MLP (1x1 conv, GELU, 1x1 conv) from student to teacher channels."""
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden, kernel_size=1), nn.GELU(), nn.Conv2d(hidden, out_channels, kernel_size=1)
    )
