"""AffinityNet-style refinement: learn pixel affinities from confident CAM seeds, then random-walk."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import torch
from torch import nn

from ablate import POSTPROCESSORS, PostContext, PostState, Range
from ablate.components.postprocessors._maps import resize
from ablate.components.postprocessors.affinity import Beta, Radius, Steps, neighbour_pairs, propagate

_BATCH = 8
_EPS = 1e-5


class _Encoder(nn.Sequential):
    """Small dilated conv net: image on the affinity grid -> embedding per cell (receptive field 15 cells)."""

    def __init__(self) -> None:
        super().__init__(
            nn.Conv2d(3, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=2, dilation=2),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=4, dilation=4),
            nn.ReLU(),
            nn.Conv2d(32, 16, 1),
        )


def pair_affinity(flat: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """AffinityNet's affinity ``exp(-mean_c |f_i - f_j|)`` of embeddings ``flat`` ``[..., C, P]`` at pixel pairs."""
    return torch.exp(-(flat[..., i] - flat[..., j]).abs().mean(dim=-2))


def learned_affinity(features: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """:func:`pair_affinity` on one image's embeddings ``[C, h, w]`` (the random walk's pair-affinity function)."""
    flat = torch.from_numpy(features).flatten(1)
    return pair_affinity(flat, torch.from_numpy(i), torch.from_numpy(j)).numpy()


def _affinity_loss(aff: torch.Tensor, li: torch.Tensor, lj: torch.Tensor) -> torch.Tensor:
    """AffinityNet's balanced loss: same-seed pairs (foreground, background: 1/4 each) -> 1, mixed pairs (1/2) -> 0.

    Seed labels are 1 (smoke), 0 (background) or -1 (ignored, and so are its pairs).
    """
    known = (li >= 0) & (lj >= 0)
    same_fg, same_bg, mixed = known & (li == 1) & (lj == 1), known & (li == 0) & (lj == 0), known & (li != lj)
    terms = (
        (same_fg, torch.log(aff + _EPS), 0.25),
        (same_bg, torch.log(aff + _EPS), 0.25),
        (mixed, torch.log(1 - aff + _EPS), 0.5),
    )
    return -sum(weight * (log_p * pairs).sum() / pairs.sum().clamp(min=1) for pairs, log_p, weight in terms)


def _downsample(images: np.ndarray, grid: tuple[int, int]) -> torch.Tensor:
    """uint8 ``[N, H, W, 3]`` images area-averaged to ``grid``, as centred float ``[N, 3, h, w]``."""
    chunks = [resize(images[k : k + 16].transpose(0, 3, 1, 2), grid) for k in range(0, len(images), 16)]
    return torch.from_numpy(np.concatenate(chunks) / 255.0 - 0.5).float()


def _grid(images: np.ndarray, stride: int) -> tuple[int, int]:
    return max(1, images.shape[1] // stride), max(1, images.shape[2] // stride)


@POSTPROCESSORS.register("affinitynet", label="AffinityNet")
class AffinityNet:
    """AffinityNet (learned affinities from CAM seeds + random walk); it hurt in the paper (49.16 vs 52.52 with CRF).

    Trains a small conv net once per trained model and CAM setting (cached) on the train split:
    cells with CAM >= ``fg_threshold`` are smoke seeds, <= ``bg_threshold`` background seeds, the
    rest ignored; pairs within ``radius`` of the same seed class should have affinity 1, mixed
    pairs 0. The test CAMs are then random-walked with the learned affinities exactly like
    ``affinity``. The paper attributes the drop to "class-agnostic smoothing".

    Args:
        fg_threshold: CAM value at or above which a train cell is a smoke seed.
        bg_threshold: CAM value at or below which a train cell is a background seed.
        stride: Image pixels per affinity cell (the net and the walk run on images downsampled by it).
        radius: Pair radius in cells, for training and for the walk.
        epochs: Training epochs over the train split.
        lr: Adam learning rate.
        beta: Power sharpening the learned affinities in the walk (the paper: 16).
        n_steps: Random-walk steps.
    """

    reads = ("cams",)
    writes = ("cams", "mask")

    def __init__(
        self,
        fg_threshold: Annotated[float, Range(0, 1)] = 0.7,
        bg_threshold: Annotated[float, Range(0, 1)] = 0.05,
        stride: Annotated[int, Range(low=1)] = 8,
        radius: Radius = 5,
        epochs: Annotated[int, Range(low=1)] = 3,
        lr: Annotated[float, Range(low=0, low_open=True)] = 1e-3,
        beta: Beta = 16.0,
        n_steps: Steps = 8,
    ) -> None:
        if bg_threshold >= fg_threshold:  # a relation between two parameters, which their annotations cannot say
            raise ValueError(f"affinitynet: need bg_threshold < fg_threshold, got {bg_threshold} and {fg_threshold}")
        # Only these shape the trained net; beta and n_steps can change without retraining.
        self.train_params = {
            "fg_threshold": fg_threshold,
            "bg_threshold": bg_threshold,
            "stride": stride,
            "radius": radius,
            "epochs": epochs,
            "lr": lr,
        }
        self.walk = {"radius": radius, "beta": beta, "n_steps": n_steps}

    def _train(self, ctx: PostContext) -> dict[str, torch.Tensor]:
        """The trained encoder's state dict (on CPU, so the cache can pickle it)."""
        p = self.train_params
        images, labels, cams = ctx.train_split()
        grid = _grid(images, p["stride"])
        inputs = _downsample(images, grid)
        cells = resize(cams, grid).reshape(len(cams), -1)
        seeds = np.where(cells >= p["fg_threshold"], 1, np.where(cells <= p["bg_threshold"], 0, -1))
        seeds[labels == 0] = 0  # a smoke-free image is background everywhere, whatever its CAM says
        seeds = torch.from_numpy(seeds.astype(np.int8))
        i, j = (torch.from_numpy(k).to(ctx.device) for k in neighbour_pairs(*grid, p["radius"]))
        i, j = i[i < j], j[i < j]  # each unordered pair once, no self-pairs

        torch.manual_seed(ctx.seed)
        net = _Encoder().to(ctx.device)
        optimiser = torch.optim.Adam(net.parameters(), lr=p["lr"])
        for _ in range(p["epochs"]):
            for batch in torch.randperm(len(inputs)).split(_BATCH):
                embeddings = net(inputs[batch].to(ctx.device)).flatten(2)
                labels = seeds[batch].to(ctx.device)
                loss = _affinity_loss(pair_affinity(embeddings, i, j), labels[:, i], labels[:, j])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        return {k: v.cpu() for k, v in net.state_dict().items()}

    def __call__(self, state: PostState, ctx: PostContext) -> PostState:
        net = _Encoder()
        net.load_state_dict(ctx.cached("affinitynet", self.train_params, lambda: self._train(ctx), per_split=False))
        net.to(ctx.device).eval()
        inputs = _downsample(state.images, _grid(state.images, self.train_params["stride"]))
        with torch.no_grad():
            embeddings = torch.cat([net(x.to(ctx.device)).cpu() for x in inputs.split(_BATCH)]).numpy()
        return propagate(state, ctx, embeddings, learned_affinity, **self.walk)
