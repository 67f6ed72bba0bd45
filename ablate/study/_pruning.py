"""Pruning of tuning trials (study key ``pruner:``): Optuna's pruners on a per-epoch training loss.

A trial reports, after each epoch of the training of the network it evaluates, one value of that epoch's
history (``on``, default ``cls``: the mean classification loss L_cls) as an Optuna intermediate value; the pruner
stops a trial whose curve is worse than those of earlier trials at the same epoch. The value is a loss, reported
with its sign turned in a maximising study (:meth:`PrunerSpec.score`), so that lower losses rank better there too.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna

from ablate.config._schema import did_you_mean

DEFAULT_ON = "cls"


PRUNERS: dict[str, Callable[..., optuna.pruners.BasePruner]] = {
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
}


@dataclass(frozen=True)
class PrunerSpec:
    """A study's ``pruner:`` entry.

    Attributes:
        name: one of :data:`PRUNERS`.
        on: the per-epoch history value reported (a loss: ``cls``, ``tf``, ``loss``).
        params: keyword arguments of the Optuna pruner (``n_startup_trials``, ``min_resource``, ...).
    """

    name: str
    on: str = DEFAULT_ON
    params: dict[str, Any] = field(default_factory=dict)

    def build(self) -> optuna.pruners.BasePruner:
        return PRUNERS[self.name](**self.params)

    @staticmethod
    def score(loss: float, maximize: bool) -> float:
        """The intermediate value reported for ``loss``: the loss itself in a minimising study, minus it in a
        maximising one, so that the pruner and the sampler (which ranks pruned trials by their last value) read
        it in the objective's direction."""
        return -loss if maximize else loss


def parse_pruner(raw: Any) -> PrunerSpec:
    """A :class:`PrunerSpec` from a name or ``{name, on, **params}``.

    Raises:
        ValueError: an unknown pruner, an unknown or bad parameter (the message names it).
    """
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise ValueError(f"expected a pruner name ({', '.join(PRUNERS)}) or {{name: ..., params}}, got {raw!r}")
    params = {k: v for k, v in raw.items() if k not in ("name", "on")}
    name, on = raw["name"], raw.get("on", DEFAULT_ON)
    if name not in PRUNERS:
        raise ValueError(f"'{name}' is not a pruner{did_you_mean(name, PRUNERS)}; pruners: {', '.join(PRUNERS)}")
    if not isinstance(on, str):
        raise ValueError(f"on: expected the name of a per-epoch loss (cls, tf, loss), got {on!r}")
    accepted = inspect.signature(PRUNERS[name]).parameters
    for key in params:
        if key not in accepted:
            raise ValueError(f"{key}: not a parameter of the {name} pruner{did_you_mean(key, accepted)}")
    for key, parameter in accepted.items():
        if parameter.default is inspect.Parameter.empty and key not in params:
            raise ValueError(f"{name}: needs parameter '{key}'")
    spec = PrunerSpec(name, on, params)
    try:
        spec.build()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: {exc}") from None
    return spec
