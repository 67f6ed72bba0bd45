"""Alignment levels: which vectors are compared, checked on a 2-channel x 2-location example by hand."""

from __future__ import annotations

import math

import pytest
import torch

from ablate import DISTANCES, LEVELS

# One image, C = 2 channels (rows) x N = 2 locations (columns), as [B, C, N]:
#   student  c0 = [1, 0], c1 = [0, 1]    -> locations l0 = [1, 0], l1 = [0, 1]
#   teacher  c0 = [2, 0], c1 = [1, 1]    -> locations l0 = [2, 1], l1 = [0, 1]
STUDENT = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
TEACHER = torch.tensor([[[2.0, 0.0], [1.0, 1.0]]])

COSINE = {
    # flattened [1, 0, 0, 1] vs [2, 0, 1, 1]: cos = 3 / (sqrt2 * sqrt6) = sqrt3 / 2
    "global": 1 - math.sqrt(3) / 2,  # 0.1340
    # l0: [1, 0] vs [2, 1]: cos = 2 / sqrt5; l1: [0, 1] vs [0, 1]: cos = 1; averaged
    "spatial": (1 - 2 / math.sqrt(5) + 0) / 2,  # 0.0528
    # c0: [1, 0] vs [2, 0]: cos = 1; c1: [0, 1] vs [1, 1]: cos = 1 / sqrt2; averaged
    "channel": (0 + 1 - 1 / math.sqrt(2)) / 2,  # 0.1464
}


def _loss(level: str, distance: str, student: torch.Tensor = STUDENT, teacher: torch.Tensor = TEACHER) -> float:
    return LEVELS.create(level)(student, teacher, DISTANCES.create(distance)).item()


@pytest.mark.parametrize("level", ["global", "spatial", "channel"])
def test_cosine_levels_by_hand(level: str) -> None:
    assert _loss(level, "cosine") == pytest.approx(COSINE[level], abs=1e-6)


def test_levels_differ_with_cosine() -> None:
    assert len({round(_loss(level, "cosine"), 6) for level in COSINE}) == 3


@pytest.mark.parametrize("level", ["global", "spatial", "channel"])
def test_l1_and_mse_are_the_mean_over_all_values_at_every_level(level: str) -> None:
    # differences teacher - student: [1, 0, 1, 0]; equal-sized groups, so every level gives the overall mean
    assert _loss(level, "l1") == pytest.approx(0.5)
    assert _loss(level, "mse") == pytest.approx(0.5)


# differences per channel c0 = [1, 0], c1 = [1, 0]; per location l0 = [1, 1], l1 = [0, 0]
L2 = {"global": math.sqrt(2), "spatial": (math.sqrt(2) + 0) / 2, "channel": (1 + 1) / 2}


@pytest.mark.parametrize("level", ["global", "spatial", "channel"])
def test_l2_levels_by_hand(level: str) -> None:
    assert _loss(level, "l2") == pytest.approx(L2[level])


def test_levels_average_over_images_without_mixing_them() -> None:
    # image 2 is the student itself: loss 0 there, so the batch loss halves
    student = torch.cat([STUDENT, STUDENT])
    teacher = torch.cat([TEACHER, STUDENT])
    for level, single in COSINE.items():
        assert _loss(level, "cosine", student, teacher) == pytest.approx(single / 2, abs=1e-6), level


def test_spatial_ignores_scale_per_location_global_only_scale_per_image() -> None:
    # teacher = student with location 1 scaled by 3: one C*N vector changes direction, per-location vectors do not
    student = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    teacher = student * torch.tensor([1.0, 3.0])
    assert _loss("spatial", "cosine", student, teacher) == pytest.approx(0.0, abs=1e-6)
    assert _loss("global", "cosine", student, teacher) > 0.01
    assert _loss("global", "cosine", student, student * 5) == pytest.approx(0.0, abs=1e-6)


def test_distance_sees_the_right_vectors() -> None:
    seen = []

    def recorder(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        seen.append((tuple(a.shape), tuple(b.shape)))
        return torch.zeros(a.shape[0])

    student = torch.zeros(2, 3, 5)  # B = 2, C = 3, N = 5
    for level in ("global", "spatial", "channel"):
        LEVELS.create(level)(student, student, recorder)
    assert seen == [((2, 15), (2, 15)), ((10, 3), (10, 3)), ((6, 5), (6, 5))]


def test_spatial_and_channel_vectors_are_taken_in_order() -> None:
    # B = 1, C = 2, N = 3: channel vectors are the rows, location vectors the columns
    student = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]])
    rows: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            rows[name] = a
            return torch.zeros(a.shape[0])

        return distance

    LEVELS.create("spatial")(student, student, keep("spatial"))
    LEVELS.create("channel")(student, student, keep("channel"))
    assert rows["spatial"].tolist() == [[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]]
    assert rows["channel"].tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
