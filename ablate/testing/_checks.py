"""The contract of each component kind as a check (the contracts are written in ``ablate/_registries.py``).

Each check builds the component as the harness does (``REGISTRY.build``, with the injected arguments) and calls it
on small inputs: shapes, dtypes, value ranges, finiteness, gradients, determinism. Kinds whose components need a
trained network (paradigms, CAM methods, post-processors) run on :data:`SMALL_TRIAL`, through the harness itself.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ablate._plugins import BUILT_IN, load_components
from ablate._registries import ALL
from ablate.cache._store import StageCache
from ablate.config._check import validate
from ablate.config._resolve import ROLES, load_yaml
from ablate.config._schema import TrialConfig
from ablate.pipeline._data import CLASSES, Dataset
from ablate.pipeline._evaluation import Evaluation
from ablate.pipeline._models import Network, build_network
from ablate.pipeline._postprocess import PostState
from ablate.pipeline._trial import TrialRun, run_trial

#: The trial the checks that need a trained network run (``small-trial.yaml`` beside this module).
SMALL_TRIAL: dict[str, Any] = load_yaml(Path(__file__).with_name("small-trial.yaml"))
BATCH, SIZE = 2, 32  # images per check call, and their side


@dataclass
class _Context:
    """What the checks share: a stage cache in a temporary folder and, built on first use, a trained small trial."""

    folder: Path
    trial: dict[str, Any]
    spec: dict[str, Any]  # the component's spec, for the checks that run it through a trial

    @property
    def cache(self) -> StageCache:
        return StageCache(self.folder / "cache")

    @cached_property
    def config(self) -> TrialConfig:
        return TrialConfig.from_dict(validate(self.trial))

    @cached_property
    def run(self) -> TrialRun:
        return TrialRun(self.config, self.cache, progress=False)

    @cached_property
    def network(self) -> Network:
        """The small trial's CAM network with its initial weights (the checks need shapes, not a trained map)."""
        torch.manual_seed(0)
        return build_network(self.config.network(self.config.cam["network"])).eval()


def _built_in(registry: Any) -> list[str]:
    return [entry.name for entry in registry if entry.module.startswith(f"{BUILT_IN}.")]


def _images(seed: int = 0) -> torch.Tensor:
    return torch.randn(BATCH, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def _finite(value: torch.Tensor | float, what: str) -> None:
    tensor = torch.as_tensor(value)
    assert torch.isfinite(tensor).all(), f"{what}: not finite ({tensor.flatten()[:4].tolist()} ...)"


def _map_4d(value: Any, batch: int, channels: int | None, what: str) -> None:
    assert isinstance(value, torch.Tensor) and value.ndim == 4, f"{what}: expected a tensor [B, C, h, w], got {value!r}"
    assert value.shape[0] == batch, f"{what}: batch {value.shape[0]}, expected {batch}"
    if channels is not None:
        assert value.shape[1] == channels, f"{what}: {value.shape[1]} channels, expected {channels}"
    _finite(value, what)


def _datasets(build: Callable[..., Any], ctx: _Context) -> None:
    first, second = build(cache_dir=ctx.folder / "cache"), build(cache_dir=ctx.folder / "cache")
    assert isinstance(first, Dataset), f"expected ablate.Dataset, got {type(first).__name__}"
    assert first.fingerprint == second.fingerprint, "two builds of one spec differ (fingerprint): not deterministic"
    sizes = {split.images.shape[1:3] for split in (first.train, first.test, first.val) if split is not None}
    assert len(sizes) == 1, f"splits at different image sizes {sorted(sizes)}: the harness trains at one size"
    labels = set(np.unique(first.train.labels).tolist())
    assert labels == set(range(len(CLASSES))), f"the train split's labels {sorted(labels)} miss a class"
    assert first.test.masks is not None and first.test.masks.max() <= 1, "test masks must be 0/1"


def _backbones(build: Callable[..., Any], ctx: _Context) -> None:
    backbone = build().eval()
    assert isinstance(getattr(backbone, "out_channels", None), int), "needs an int attribute `out_channels`"
    images = _images()
    features = backbone(images)
    _map_4d(features, BATCH, backbone.out_channels, "forward(images)")
    layer = backbone.cam_layer(None)
    assert isinstance(layer, nn.Module), f"cam_layer(None): expected the nn.Module Grad-CAM hooks, got {layer!r}"
    seen: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda module, inputs, output: seen.append(output))
    try:
        backbone(images)
    finally:
        handle.remove()
    assert seen, "cam_layer(None) is not run by forward()"
    _map_4d(backbone.to_map(seen[0], images), BATCH, None, "to_map(cam layer output, images)")


def _heads(build: Callable[..., Any], ctx: _Context) -> None:
    channels = 8
    head = build(in_channels=channels, num_classes=len(CLASSES)).eval()
    features = torch.randn(BATCH, channels, 4, 4, requires_grad=True)
    out = head(features, _images())
    maps = out if isinstance(out, tuple) else (out,)
    assert len(maps) in (1, 2), f"expected a class map or a (class map, logit map) pair, got {len(maps)} values"
    for i, value in enumerate(maps):
        _map_4d(value, BATCH, len(CLASSES), f"output {i}")
    maps[-1].sum().backward()
    assert features.grad is not None and features.grad.abs().sum() > 0, "no gradient reaches the features"


def _paradigms(build: Callable[..., Any], ctx: _Context) -> None:
    paradigm = build()
    roles = getattr(paradigm, "roles", None)
    assert isinstance(roles, tuple) and roles and set(roles) <= set(ROLES), f"roles {roles!r}: a tuple of {ROLES}"
    assert isinstance(getattr(paradigm, "uses_transfer", None), bool), "needs a bool attribute `uses_transfer`"
    result = run_trial({**ctx.trial, "paradigm": ctx.spec, "cam": {"network": "auto"}}, cache=ctx.cache, progress=False)
    assert result.trainings >= 1, "fit() trained nothing"
    assert result.history and all(math.isfinite(entry["loss"]) for entry in result.history), "losses not finite"


def _levels(build: Callable[..., Any], ctx: _Context) -> None:
    level = build()
    student = torch.randn(BATCH, 6, 9, requires_grad=True)
    teacher = torch.randn(BATCH, 6, 9)
    for name in _built_in(ALL["distances"]):  # each built-in distance (a plugin distance has its own check)
        distance = ALL["distances"].create(name)
        loss = level(student, teacher, distance)
        assert isinstance(loss, torch.Tensor) and loss.ndim == 0, f"with {name}: expected a scalar tensor"
        _finite(loss, f"with {name}")
        same = level(teacher, teacher, distance)
        assert abs(float(same)) < 1e-4, f"with {name}: identical maps give {float(same):.3g}, expected 0"
    loss.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0, "no gradient reaches the student map"


def _distances(build: Callable[..., Any], ctx: _Context) -> None:
    distance = build()
    a = torch.randn(5, 7, requires_grad=True)
    b = torch.randn(5, 7)
    value = distance(a, b)
    assert isinstance(value, torch.Tensor) and value.shape == (5,), f"expected [M] distances, got {value!r}"
    _finite(value, "distance")
    assert (value >= 0).all(), "a distance is never negative"
    assert distance(b, b).abs().max() < 1e-4, "identical vectors must be at distance 0"
    value.sum().backward()
    assert a.grad is not None and a.grad.abs().sum() > 0, "no gradient reaches the inputs"


def _projections(build: Callable[..., Any], ctx: _Context) -> None:
    projection = build(in_channels=4, out_channels=6)
    if projection is None:  # learns nothing: the harness then needs equal channel counts
        return
    assert isinstance(projection, nn.Module), f"expected an nn.Module or None, got {type(projection).__name__}"
    _map_4d(projection(torch.randn(BATCH, 4, 5, 5)), BATCH, 6, "projection of [B, 4, 5, 5]")


def _pretrainers(build: Callable[..., Any], ctx: _Context) -> None:
    task = build()
    task.check("pretrainer")  # images and labels fit together, enough images for one batch
    assert task.steps >= 1 and task.lr > 0, f"steps {task.steps} and lr {task.lr} must be positive"
    again = build()
    assert np.array_equal(task.images, again.images), "two builds of one spec draw different images"


def _cams(build: Callable[..., Any], ctx: _Context) -> None:
    method = build()
    maps = method(ctx.network, _images(), None)
    assert isinstance(maps, torch.Tensor) and maps.ndim == 3 and maps.shape[0] == BATCH, (
        f"expected raw maps [B, h, w], got {getattr(maps, 'shape', maps)!r}"
    )
    _finite(maps, "maps")


def _postprocessors(build: Callable[..., Any], ctx: _Context) -> None:
    step = build()
    run = ctx.run
    images = run.data.test.images
    state = PostState(images, run.maps.cams("test")[0])
    out = step(state, run.chain)
    assert isinstance(out, PostState), f"expected ablate.PostState, got {type(out).__name__}"
    assert out.images is images, "the images must pass through unchanged"
    assert out.cams.shape == state.cams.shape and out.cams.dtype == np.float32, "cams: float32 [N, H, W]"
    assert out.cams.min() >= 0 and out.cams.max() <= 1, f"cams outside [0, 1]: {out.cams.min()}..{out.cams.max()}"
    if out.mask is not None:
        assert out.mask.shape == state.cams.shape and out.mask.dtype == bool, "mask: bool [N, H, W]"
    writes = getattr(step, "writes", None)
    if writes is not None:
        assert "cams" in writes or np.array_equal(out.cams, state.cams), "changed cams it does not list in `writes`"


def _segmenters(build: Callable[..., Any], ctx: _Context) -> None:
    model = build(num_classes=len(CLASSES)).eval()
    assert isinstance(model, nn.Module), f"expected an nn.Module, got {type(model).__name__}"
    _map_4d(model(_images()), BATCH, len(CLASSES), "forward(images)")


def _metrics(build: Callable[..., Any], ctx: _Context) -> None:
    rng = np.random.default_rng(0)
    masks = rng.random((6, 8, 8)) < 0.3
    labels = masks.reshape(6, -1).any(axis=1).astype(np.int64)
    cams = rng.random((6, 8, 8)).astype(np.float32)
    ev = Evaluation(cams, cams >= 0.5, masks.astype(np.uint8), labels, rng.random(6), masks[::-1].astype(np.uint8))
    first, second = build(ev=ev), build(ev=ev)
    assert isinstance(first, float | int | np.floating), f"expected a number, got {type(first).__name__}"
    assert math.isnan(first) or math.isfinite(first), f"expected a finite number or NaN, got {first}"
    assert first == second or (math.isnan(first) and math.isnan(second)), "two calls on one input differ"


def _loggers(build: Callable[..., Any], ctx: _Context) -> None:
    logger = build(folder=ctx.folder / "study")
    assert callable(getattr(logger, "log", None)), "needs a method log(run, config, history, metrics)"
    history = [{"tag": "student", "epoch": 1, "loss": 0.5, "cls": 0.5, "lr": 1e-3}]
    logger.log("trial-0", validate(ctx.trial, build=False), history, {"metric": 0.25})


#: Registry kind -> its check, called with the component's ``build(**injected)`` and the shared context.
CHECKS: dict[str, Callable[..., None]] = {
    "datasets": _datasets,
    "backbones": _backbones,
    "heads": _heads,
    "paradigms": _paradigms,
    "levels": _levels,
    "distances": _distances,
    "projections": _projections,
    "pretrainers": _pretrainers,
    "cams": _cams,
    "postprocessors": _postprocessors,
    "segmenters": _segmenters,
    "metrics": _metrics,
    "loggers": _loggers,
}


def check_component(
    kind: str, name: str, *, trial: dict[str, Any] | None = None, folder: Path | None = None, **params: Any
) -> None:
    """Check the registered component ``name`` of ``kind`` against its kind's contract.

    Args:
        kind: a registry kind (``ablate list`` names them), e.g. ``"levels"``.
        name: the component's registered name.
        trial: the trial config the checks that need a trained network run (default: :data:`SMALL_TRIAL`).
        folder: where the checks write (a stage cache, a study folder); default: a temporary folder.
        **params: the component's parameters (those without a default are required).

    Raises:
        AssertionError: the component breaks its contract; the message names the rule.
        KeyError: ``kind`` is not a registry kind.
        RegistryError: ``name`` is not registered.
    """
    load_components()
    registry = ALL[kind]
    problems = registry.check_params(name, params)
    assert not problems, "; ".join(problems)
    spec = {"name": name, **params}
    with tempfile.TemporaryDirectory(prefix="ablate-check-") as scratch:
        ctx = _Context(Path(folder or scratch), trial if trial is not None else SMALL_TRIAL, spec)

        def build(**injected: Any) -> Any:
            return registry.build(spec, **injected)

        try:
            CHECKS[kind](build, ctx)
        except AssertionError as exc:
            raise AssertionError(f"{kind} '{name}': {exc}") from None
