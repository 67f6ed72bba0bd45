"""The knowledge-transfer loss L_tf: projection, then a level comparing vectors with a distance."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ablate._registries import DISTANCES, LEVELS, PROJECTIONS
from ablate.config._schema import TransferConfig


class TransferLoss(nn.Module):
    """L_tf(student map, teacher map) built from a config's ``transfer`` section.

    The student map is projected to the teacher's channels (if a projection is set) and
    resampled to the teacher's grid, since CNN and ViT strides differ; resampling is
    parameter-free, so ``projection: none`` only requires equal channel counts.
    """

    def __init__(self, transfer: TransferConfig, student_channels: int, teacher_channels: int) -> None:
        super().__init__()
        spec = transfer.projection
        self.projection = PROJECTIONS.build(spec, in_channels=student_channels, out_channels=teacher_channels)
        if self.projection is None and student_channels != teacher_channels:
            raise ValueError(
                f"transfer.projection: '{spec['name']}' learns no mapping, but the student's aligned map has "
                f"{student_channels} channels and the teacher's {teacher_channels}; use a projection that "
                "learns a mapping (`ablate list projections`) or align maps of equal width"
            )
        self.level = LEVELS.build(transfer.level)
        self.distance = DISTANCES.build(transfer.distance)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        if self.projection is not None:
            student = self.projection(student)
        if student.shape[-2:] != teacher.shape[-2:]:
            student = F.interpolate(student, size=teacher.shape[-2:], mode="bilinear", align_corners=False)
        return self.level(student.flatten(2).float(), teacher.flatten(2).float(), self.distance)
