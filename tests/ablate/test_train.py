"""The trainer's learning-rate schedule, weight averaging and initial weights."""

from __future__ import annotations

import math

import pytest
import torch

from ablate._config import resolve
from ablate._train import Trainer, _ema, lr_factor


def test_warmup_ramps_linearly_then_cosine_decays_to_zero() -> None:
    factors = [lr_factor(0.2, "cosine", 10, step) for step in range(10)]
    assert factors[:2] == [0.5, 1.0]  # 2 warm-up steps: 1/2, 2/2
    # cosine over the remaining 8 steps: 0.5 * (1 + cos(pi * k / 8))
    assert factors[2:] == pytest.approx([0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(8)])
    assert lr_factor(0.2, "cosine", 10, 10) == pytest.approx(0.0)


def test_constant_schedule_and_no_warmup() -> None:
    assert [lr_factor(0.0, "constant", 5, s) for s in range(5)] == [1.0] * 5
    assert lr_factor(0.0, "cosine", 4, 0) == 1.0
    assert lr_factor(0.01, "constant", 10, 0) == 1.0  # a share below one step still ramps over one step


def test_ema_averages_weights_and_buffers() -> None:
    module = torch.nn.BatchNorm1d(1)
    average = _ema(module, 0.75)
    assert _ema(module, 0.0) is None
    for value in (4.0, 8.0):
        with torch.no_grad():
            module.weight.fill_(value)
            module.running_mean.fill_(value)
        average.update_parameters(module)
    # the first update copies, later ones move by 1 - decay: 4, then 0.75 * 4 + 0.25 * 8 = 5
    assert average.module.weight.item() == pytest.approx(5.0)
    assert average.module.running_mean.item() == pytest.approx(5.0)


def _initial_weights(seed: int, init_seed: int | None, role: str) -> list[torch.Tensor]:
    config = resolve(None, {"seed": seed, "train.init_seed": init_seed})
    trainer = Trainer(config, data=None, device=torch.device("cpu"), cache=None, progress=False)
    return [p.detach() for p in trainer.build(role).parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("role", ["teacher", "student"])
def test_init_seed_gives_every_trial_seed_the_same_initial_weights(role: str) -> None:
    assert not _same(_initial_weights(0, None, role), _initial_weights(1, None, role))
    assert _same(_initial_weights(0, 7, role), _initial_weights(1, 7, role))
    assert _same(_initial_weights(3, 3, role), _initial_weights(3, None, role))  # null means the trial seed
