"""Distances: per-vector values on tiny tensors, computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from ablate import DISTANCES


def _d(name: str, a: list[list[float]], b: list[list[float]]) -> list[float]:
    return DISTANCES.create(name)(torch.tensor(a), torch.tensor(b)).tolist()


def test_registered() -> None:
    assert {"cosine", "l1", "l2", "mse"} <= set(DISTANCES.names())


def test_cosine_by_hand() -> None:
    a = [[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 1.0], [3.0, 4.0]]
    b = [[0.0, 1.0], [2.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [4.0, 3.0]]
    # orthogonal 1 - 0; same direction 1 - 1; opposite 1 - (-1); 45 degrees 1 - 1/sqrt2; 1 - (12 + 12) / 25
    assert _d("cosine", a, b) == pytest.approx([1.0, 0.0, 2.0, 1 - 1 / math.sqrt(2), 1 - 24 / 25], abs=1e-6)


def test_cosine_ignores_scale_but_l1_l2_do_not() -> None:
    a, b = [[1.0, 2.0]], [[10.0, 20.0]]
    assert _d("cosine", a, b) == pytest.approx([0.0], abs=1e-6)
    assert _d("l1", a, b) == [(9 + 18) / 2]
    assert _d("l2", a, b) == pytest.approx([math.sqrt(81 + 324)])
    assert _d("mse", a, b) == [(81 + 324) / 2]


def test_l1_and_l2_by_hand() -> None:
    a = [[1.0, 2.0], [0.0, 0.0]]
    b = [[3.0, -2.0], [0.0, 0.0]]
    # |1-3| = 2, |2+2| = 4: mean 3; squares 4, 16: Euclidean norm sqrt(20), mean 10; identical vectors: 0
    assert _d("l1", a, b) == [3.0, 0.0]
    assert _d("l2", a, b) == pytest.approx([math.sqrt(20), 0.0])
    assert _d("mse", a, b) == [10.0, 0.0]


def test_l2_is_the_euclidean_norm_of_the_difference_with_zero_gradient_when_equal() -> None:
    torch.manual_seed(1)
    a, b = torch.randn(4, 9), torch.randn(4, 9)
    torch.testing.assert_close(DISTANCES.create("l2")(a, b), torch.cdist(a[:, None], b[:, None])[:, 0, 0])
    same = torch.ones(2, 3, requires_grad=True)
    DISTANCES.create("l2")(same, torch.ones(2, 3)).sum().backward()
    assert torch.equal(same.grad, torch.zeros(2, 3))


@pytest.mark.parametrize("name", ["cosine", "l1", "l2", "mse"])
def test_one_value_per_vector_zero_when_identical(name: str) -> None:
    torch.manual_seed(0)
    a = torch.randn(5, 7)
    out = DISTANCES.create(name)(a, a.clone())
    assert out.shape == (5,)
    torch.testing.assert_close(out, torch.zeros(5), atol=1e-6, rtol=0)


def test_cosine_of_a_zero_vector_is_finite() -> None:
    assert _d("cosine", [[0.0, 0.0]], [[1.0, 0.0]]) == [1.0]


@pytest.mark.parametrize("name", ["cosine", "l1", "l2", "mse"])
def test_gradients_flow_into_both_inputs(name: str) -> None:
    a = torch.tensor([[1.0, 2.0]], requires_grad=True)
    b = torch.tensor([[2.0, 1.0]], requires_grad=True)
    DISTANCES.create(name)(a, b).sum().backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0
