"""Training-free affinity propagation: a random walk over the network's own feature similarities."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Annotated

import numpy as np
from scipy import sparse

from ablate import POSTPROCESSORS, PostContext, PostState, Range, minmax
from ablate.components.postprocessors._maps import resize

# (features [C, h, w], i, j) -> affinity in [0, 1] of each pixel pair (i[k], j[k]) (flat indices)
PairAffinity = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def neighbour_pairs(height: int, width: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices ``(i, j)`` of every ordered pixel pair at Euclidean distance <= ``radius``, self-pairs included."""
    ys, xs = np.mgrid[:height, :width]
    sources, targets = [], []
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy * dy + dx * dx > radius * radius:
                continue
            inside = (ys + dy >= 0) & (ys + dy < height) & (xs + dx >= 0) & (xs + dx < width)
            sources.append((ys * width + xs)[inside])
            targets.append(((ys + dy) * width + xs + dx)[inside])
    return np.concatenate(sources), np.concatenate(targets)


def random_walk(scores: np.ndarray, affinity: np.ndarray | sparse.sparray, n_steps: int) -> np.ndarray:
    """Propagate ``scores`` ``[P]`` for ``n_steps`` steps of the random walk defined by ``affinity`` ``[P, P]``.

    The transition matrix is ``affinity`` row-normalised (every row needs a positive sum), and each
    step replaces a pixel's score by the affinity-weighted mean of its neighbours': ``s <- T @ s``.
    """
    matrix = sparse.csr_array(affinity, dtype=np.float64)
    transition = sparse.diags_array(1.0 / matrix.sum(axis=1)) @ matrix
    for _ in range(n_steps):
        scores = transition @ scores
    return scores


def cosine_affinity(features: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Cosine similarity of the feature vectors at pixels ``i`` and ``j``, negatives clipped to 0."""
    flat = features.reshape(len(features), -1).astype(np.float32)
    flat /= np.maximum(np.linalg.norm(flat, axis=0, keepdims=True), 1e-12)
    gram = flat.T @ flat  # [P, P]: cheaper than gathering C-vectors for every pair
    return np.clip(gram[i, j], 0.0, 1.0)


def walk_image(
    cam: np.ndarray, features: np.ndarray, *, pair_affinity: PairAffinity, radius: int, beta: float, n_steps: int
) -> np.ndarray:
    """One image's ``[h, w]`` CAM random-walked over ``pair_affinity(features) ** beta`` within ``radius``."""
    height, width = cam.shape
    i, j = neighbour_pairs(height, width, radius)
    weights = pair_affinity(features, i, j).astype(np.float64) ** beta
    # Self-pairs always count fully, so no row is empty even where every neighbour is dissimilar.
    weights[i == j] = 1.0
    affinity = sparse.csr_array((weights, (i, j)), shape=(height * width, height * width))
    return random_walk(cam.reshape(-1).astype(np.float64), affinity, n_steps).reshape(height, width)


def propagate(
    state: PostState,
    ctx: PostContext,
    features: np.ndarray,
    pair_affinity: PairAffinity,
    *,
    radius: int,
    beta: float,
    n_steps: int,
) -> PostState:
    """``state`` with CAMs random-walked on the grid of ``features`` ``[N, C, h, w]``, upsampled and renormalised.

    The mask is cleared: pixels are decided by a later step (or the harness's default threshold).
    ``pair_affinity`` must be a module-level function, since the per-image work runs in other processes.
    """
    grid = features.shape[-2:]
    walk = partial(walk_image, pair_affinity=pair_affinity, radius=radius, beta=beta, n_steps=n_steps)
    walked = np.stack(ctx.map_images(walk, resize(state.cams, grid), features))
    return state.with_(cams=minmax(resize(walked, state.cams.shape[-2:])), mask=None)


# the random walk's parameters, shared with AffinityNet
Radius = Annotated[int, Range(low=1)]
Beta = Annotated[float, Range(low=0, low_open=True)]
Steps = Annotated[int, Range(low=1)]


@POSTPROCESSORS.register("affinity")
class Affinity:
    """Affinity random walk (training-free): spread the CAM along cosine similarities of the network's features.

    Works on the feature grid: A_ij = max(cos(f_i, f_j), 0)^beta for pixels within ``radius``,
    T = row-normalised A, CAM <- T^n_steps CAM, then upsampled and min-max renormalised. Like
    AffinityNet's walk (beta as its aff^beta, the paper's beta = 16) without learning the affinities.

    Args:
        radius: Neighbourhood radius on the feature grid, in feature cells.
        beta: Power sharpening the affinities (higher keeps the walk inside similar regions).
        n_steps: Random-walk steps.
    """

    reads = ("cams",)
    writes = ("cams", "mask")

    def __init__(self, radius: Radius = 5, beta: Beta = 16.0, n_steps: Steps = 8) -> None:
        self.walk = {"radius": radius, "beta": beta, "n_steps": n_steps}

    def __call__(self, state: PostState, ctx: PostContext) -> PostState:
        return propagate(state, ctx, ctx.features(), cosine_affinity, **self.walk)
