"""Synthetic studies for the report tests: real Optuna trials in memory, a stored-study stand-in, small artifacts."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from ablate._reference import load_reference
from ablate.storage import config_id, encode, identity
from ablate.study import Objective, Study

METRICS = ("smoke_iou", "chimney_claimed", "false_activation", "miou")
IMAGES = 12  # test images per trial; every fourth has no smoke (NaN IoU)


@dataclass
class Spec:
    """One stored trial to make."""

    params: dict[str, Any]
    seed: int
    state: TrialState = TrialState.COMPLETE
    metrics: dict[str, float] | None = None
    per_image: list[float] | None = None
    oracle: bool = False
    marks: tuple[str, ...] | None = None  # stored as the trial's marks (None: not stored, as before marks were)
    error: str = ""


PAPER = Path(__file__).resolve().parents[3] / "studies" / "references" / "paper.yaml"


def make_study(folder: Path, grid: dict[str, list[Any]] | None = None, seeds: int = 2, **extra: Any) -> Study:
    """A study whose file exists (the report shows it); ``extra`` overrides any other field."""
    path = folder / "study.yaml"
    path.write_text(f"name: synthetic\ngrid: {grid}\nseeds: {seeds}\n")
    fields = {
        "path": path,
        "name": "synthetic",
        "description": "A synthetic study for the report tests.",
        "config": {},
        "grid": [grid] if grid else [],
        "tune": [],
        "sampler": "tpe",
        "n_trials": None,
        "timeout": None,
        "seeds": list(range(seeds)),
        "objectives": [Objective("smoke_iou", "maximize")],
        "baseline": None,
        "reference": load_reference(PAPER),
    }
    return Study(**(fields | extra))


def _distribution(study: Study, path: str, specs: list[Spec]) -> Any:
    for d in study.tune:
        if d.path == path and d.kind == "float":
            return FloatDistribution(d.low, d.high, log=d.log)
    return CategoricalDistribution(list(dict.fromkeys(encode(s.params[path]) for s in specs if path in s.params)))


def make_stored(
    study: Study, specs: list[Spec], folder: Path, artifacts: bool = True, names: dict[str, str] | None = None
) -> SimpleNamespace:
    """A stand-in for an opened StoredStudy holding ``specs`` as stored trials (and their gallery artifacts);
    ``names``: the class and object names the trials' dataset gave (not stored when None)."""
    optuna_study = optuna.create_study(study_name=study.name, directions=[o.direction for o in study.objectives])
    paths = {p for s in specs for p in s.params}
    distributions = {p: _distribution(study, p, specs) for p in paths}
    for number, spec in enumerate(specs):
        done = spec.state == TrialState.COMPLETE
        attrs = {
            "seed": spec.seed,
            "params": spec.params,
            "identity": identity(spec.params, spec.seed),
            "config_id": config_id(spec.params),
            "primary": True,
        }
        if done:
            attrs |= {"metrics": spec.metrics, "per_image_iou": spec.per_image, "oracle": spec.oracle, "runtime": 1.0}
            attrs |= {"names": names} if names else {}
            attrs |= {"marks": list(spec.marks)} if spec.marks is not None else {}
        else:
            attrs["error"] = spec.error
        optuna_study.add_trial(
            create_trial(
                state=spec.state,
                params={p: encode(v) for p, v in spec.params.items()},
                distributions={p: distributions[p] for p in spec.params},
                values=[spec.metrics[o.metric] for o in study.objectives] if done else None,
                user_attrs=attrs,
            )
        )
        if done and artifacts:
            _write_artifact(folder / "artifacts" / f"trial-{number}.npz", spec.metrics["smoke_iou"])
    return SimpleNamespace(
        study=study,
        folder=folder,
        optuna_study=optuna_study,
        trials=lambda: optuna_study.get_trials(deepcopy=False),
        trial_stem=lambda number: f"trial-{number}",
    )


def _write_artifact(path: Path, level: float) -> None:
    """A gallery of 8 images 16x16 (smoke + chimney, smoke, chimney, clean) and a CAM as good as ``level``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    k, size = 8, 16
    masks = np.zeros((k, size, size), np.uint8)
    cooccur = np.zeros_like(masks)
    masks[:4, 2:9, 4:12] = 1
    cooccur[[0, 1, 4, 5], 9:15, 6:9] = 1
    yy, xx = np.mgrid[:size, :size]
    cams = np.exp(-((yy - 5) ** 2 + (xx - 8) ** 2) / (2 + 30 * level))[None].repeat(k, 0)
    images = np.full((k, size, size, 3), 120, np.uint8)
    images[masks > 0] = 200
    np.savez_compressed(
        path,
        names=np.array([f"test-{i:05d}" for i in range(k)]),
        indices=np.arange(k),
        images=images,
        masks=masks,
        cooccur=cooccur,
        cams=cams.astype(np.float16),
        pred=cams >= 0.3,
    )


def fake_metrics(rng: np.random.Generator, level: float) -> tuple[dict[str, float], list[float]]:
    """Metrics around ``level`` and per-image IoUs whose defined entries average to smoke_iou."""
    per_image = np.clip(rng.normal(level, 0.1, IMAGES), 0, 1)
    per_image[::4] = np.nan
    metrics = {
        "smoke_iou": float(np.nanmean(per_image)),
        "chimney_claimed": float(np.clip(0.6 - level + rng.normal(0, 0.05), 0, 1)),
        "false_activation": float(abs(rng.normal(0.05, 0.02))),
        "miou": float(level + 0.2),
    }
    return metrics, [None if math.isnan(v) else float(v) for v in per_image]


def grid_specs(
    grid: dict[str, list[Any]], seeds: int, effect: Any, rng: np.random.Generator, **kwargs: Any
) -> list[Spec]:
    """One completed trial per grid configuration and seed; ``effect(params)`` gives its mean smoke IoU."""
    specs = []
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values, strict=True))
        for seed in range(seeds):
            metrics, per_image = fake_metrics(rng, effect(params))
            specs.append(Spec(params, seed, metrics=metrics, per_image=per_image, **kwargs))
    return specs


@pytest.fixture(scope="session")
def synthetic() -> SimpleNamespace:
    """The builders above, for the test modules (conftest modules are not importable by name)."""
    return SimpleNamespace(Spec=Spec, study=make_study, stored=make_stored, grid=grid_specs, metrics=fake_metrics)
