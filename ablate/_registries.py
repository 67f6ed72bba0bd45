"""The one registry per component kind, each with its documented contract.

Every variant lives in ``components/<kind>/<name>.py`` and registers itself with
``@<KIND>.register("name")``. The factory's keyword parameters are the component's config
parameters (``ablate list KIND`` shows them with their defaults).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from ablate._registry import Registry
from ablate.config._schema import SegmentTraining
from ablate.pipeline._data import Dataset, Pretraining


def _is_module(obj: Any) -> None:
    if not isinstance(obj, nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(obj).__name__}")


def _is_callable(obj: Any) -> None:
    if not callable(obj):
        raise TypeError(f"expected a callable, got {type(obj).__name__}")


def _is_instance(obj: Any, cls: type) -> None:
    if not isinstance(obj, cls):
        raise TypeError(f"expected ablate.{cls.__name__}, got {type(obj).__name__}")


DATASETS = Registry(
    "datasets",
    "factory(**params, cache_dir: Path) -> ablate.Dataset (train split with image labels, "
    "test split with smoke masks and optional co-occurrence masks, all at one image size)",
    check=lambda obj: _is_instance(obj, Dataset),
    injected=("cache_dir",),
)
BACKBONES = Registry(
    "backbones",
    "factory(**params) -> nn.Module with `out_channels: int`, forward(images [B,3,H,W]) -> feature map "
    "[B, C, h, w], cam_layer(path | None) -> nn.Module that Grad-CAM hooks, and to_map(output, images) "
    "turning that module's output into [B, C, h, w]",
    check=_is_module,
)
HEADS = Registry(
    "heads",
    "factory(in_channels: int, num_classes: int, **params) -> nn.Module with "
    "forward(features [B,C,h,w], image [B,3,H,W]) -> class map [B, num_classes, h, w], or a pair "
    "(class map, logit map) where the logits pool the second (a head that refines the map it classifies from)",
    check=_is_module,
    injected=("in_channels", "num_classes"),
)
PARADIGMS = Registry(
    "paradigms",
    "factory(**params) -> object with `roles: tuple[str, ...]` (networks it needs) and "
    "fit(trainer: ablate.Trainer) -> dict[role, Network] of trained networks",
)
LEVELS = Registry(
    "levels",
    "factory(**params) -> callable(student [B,C,N], teacher [B,C,N], distance) -> scalar loss; "
    "it decides which vectors are compared (global / per location / per channel)",
    check=_is_callable,
)
DISTANCES = Registry(
    "distances",
    "factory(**params) -> callable(a [M, D], b [M, D]) -> [M] per-vector distance (0 = identical)",
    check=_is_callable,
)
PROJECTIONS = Registry(
    "projections",
    "factory(in_channels: int, out_channels: int, **params) -> nn.Module mapping student "
    "features [B, in, h, w] to [B, out, h, w], or None when it learns nothing and needs in == out",
    injected=("in_channels", "out_channels"),
)
PRETRAINERS = Registry(
    "pretrainers",
    "factory(**params) -> ablate.Pretraining (uint8 images [N, H, W, 3], class labels, steps, batch size, lr): a "
    "labelled task the harness trains a network's backbone on once, before any trial trains it (`pretrain:` of "
    "`teacher` / `student`); every trial with that backbone starts from the result, cached",
    check=lambda obj: _is_instance(obj, Pretraining),
)
CAMS = Registry(
    "cams",
    "factory(**params) -> callable(network: ablate.Network, images [B,3,H,W], layer: str | None) "
    "-> raw class-1 maps [B, h, w] (the harness applies ReLU, min-max and upsampling); "
    "the spec keys `network` and `layer` are the harness's",
    check=_is_callable,
    harness_keys=("network", "layer"),
)
POSTPROCESSORS = Registry(
    "postprocessors",
    "factory(**params) -> callable(state: ablate.PostState, ctx: ablate.PostContext) -> PostState; "
    "steps that decide pixels return state.with_(mask=...); the one registered with `default=True` ends every "
    "chain that produced no mask; a step that asks ctx.cams(layer=...) lists those layers in `cam_layers`, which "
    "validation checks against the CAM network; a step with `uses_ground_truth = True` marks the trial's numbers "
    "[oracle], one whose `random_weights` is true (a model without trained weights) marks them [random weights]",
    check=_is_callable,
)
SEGMENTERS = Registry(
    "segmenters",
    "factory(num_classes: int, **params) -> nn.Module with forward(images [B,3,H,W], normalised) -> class logits "
    "[B, num_classes, h, w] (the harness upsamples them to H x W); trial stage 3 (`segment:`) trains it on the "
    "train split's pseudo-masks; the spec's training keys (masks, epochs, batch_size, lr, ...) are the harness's",
    check=_is_module,
    injected=("num_classes",),
    harness_keys=tuple(field.name for field in dataclasses.fields(SegmentTraining)),
)
METRICS = Registry(
    "metrics",
    "function(ev: ablate.Evaluation) -> float (NaN when undefined for this split); "
    "higher is better unless the function has attribute `lower_is_better = True`; registered with "
    "`cooccurrence=True` it is shown beside the objective, with `default_objective=True` it is the objective of "
    "studies that name none, with `per_image_iou_mean=True` it is the mean of the stored per-image smoke IoU "
    "(its report interval then also resamples test images), with `chance_of=(names...)` it is the chance level "
    "of those metrics (what an uninformed prediction scores on the same images; reports mark it beside them)",
    injected=("ev",),
)

LOGGERS = Registry(
    "loggers",
    "factory(**params, folder: Path) -> object with log(run: str, config: dict, history: list[dict], "
    "metrics: dict[str, float]) writing one completed trial (run name, resolved config, per-epoch losses by "
    "network, test metrics) to an experiment tracker; `folder` is the study folder",
    injected=("folder",),
)

ALL: dict[str, Registry] = {
    r.kind: r
    for r in (
        DATASETS,
        BACKBONES,
        HEADS,
        PARADIGMS,
        LEVELS,
        DISTANCES,
        PROJECTIONS,
        PRETRAINERS,
        CAMS,
        POSTPROCESSORS,
        SEGMENTERS,
        METRICS,
        LOGGERS,
    )
}
