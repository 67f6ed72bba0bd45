"""1x1 convolution projection."""

from torch import nn

from ablate import PROJECTIONS


@PROJECTIONS.register("conv")
def conv(in_channels: int, out_channels: int) -> nn.Module:
    """Learnable 1x1 convolution from student to teacher channels (the paper's projection)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1)
