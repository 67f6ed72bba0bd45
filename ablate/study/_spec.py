"""A study as the runner, storage and report read it: a base config plus a search block (grid / tune), seeds,
objectives, and the optional pruner and race; its configurations, trial configs and signature.

:func:`ablate.study.load_study` (``_load``) makes one from a study file and checks it whole before any work.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
import math
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate._reference import Reference
from ablate.cache._store import stable_hash
from ablate.config._resolve import LATER_KEYS, resolve, set_dotted
from ablate.study._pruning import PrunerSpec
from ablate.study._race import RaceSpec, study_plan

STUDY_KEYS = {
    "name": "study name (default: the file name)",
    "description": "one paragraph shown on the report's title page",
    "extends": "another study file whose settings this one starts from",
    "config": "the base trial config",
    "grid": "dotted path -> list of values (or a list of such grids, unioned)",
    "tune": "dotted path -> distribution {low, high, log, step, type} or {choices: [...]}",
    "sampler": "tpe (default), random, cmaes, grid, bruteforce",
    "n_trials": "tuning budget in configurations",
    "timeout": "tuning budget in seconds",
    "pruner": "stop unpromising tuning trials by their per-epoch loss: median, percentile, successive_halving, "
    "hyperband, or {name, on: cls, **Optuna pruner params}",
    "seeds": "list of seeds or a count (default [0]); with race: {initial: N, max: M}",
    "race": "give a configuration more seeds only while its comparison is undecided: {against: baseline | best, "
    "alpha, margin, futility, spending, step}",
    "objective": "metric name, {metric, direction}, or a list of them",
    "baseline": "dotted path -> value identifying the baseline configuration",
    "plugins": "modules to import for third-party components",
    "loggers": "experiment trackers each completed trial is written to, e.g. [tensorboard]",
    "reference": "a file of published numbers shown beside the results (relative to the study file)",
}
#: The direction of an objective whose metric's plugin is not importable: the stored Optuna study's.
STORED = "stored"
SAMPLERS = ("tpe", "random", "cmaes", "grid", "bruteforce")


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str  # "maximize" or "minimize"


@dataclass(frozen=True)
class Distribution:
    """One ``tune:`` entry."""

    path: str
    kind: str  # float, int or categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def values(self) -> list[Any]:
        """The values a grid or brute-force sampler enumerates: the choices, or a range's steps from low to high.

        Each step is ``low + i * step`` rounded to 12 significant digits, so that 0.1 steps give 0.3, not
        0.30000000000000004, and the last never lies above ``high``.
        """
        if self.choices:
            return list(self.choices)
        step = self.step or 1  # an int range without a step counts by one
        count = math.floor((self.high - self.low) / step + 1e-9) + 1
        if self.kind == "int":
            return [int(self.low + i * step) for i in range(count)]
        return [float(f"{self.low + i * step:.12g}") for i in range(count)]

    def size(self) -> int | None:
        """How many distinct values the entry can take (None: a continuous range)."""
        if self.kind == "float" and not self.choices and self.step is None:
            return None
        return len(self.values())


@dataclass
class Study:
    """A parsed, validated study file."""

    path: Path
    name: str
    description: str
    config: dict[str, Any]
    grid: list[dict[str, list[Any]]]
    tune: list[Distribution]
    sampler: str
    n_trials: int | None
    timeout: float | None
    seeds: list[int]
    objectives: list[Objective]
    baseline: dict[str, Any] | None
    plugins: list[str] = field(default_factory=list)
    reference: Reference | None = None  # published numbers for the paper-layout tables
    loggers: list[dict[str, Any]] = field(default_factory=list)  # not in the signature: results do not depend on it
    pruner: PrunerSpec | None = None  # not in the signature either: it decides which trials finish, not their numbers
    race: RaceSpec | None = None  # not in the signature: it decides which seeds run, not their numbers
    missing_plugins: str = ""  # why a plugin did not import, for commands that read stored trials only

    @property
    def is_tuning(self) -> bool:
        return bool(self.tune)

    def adopt_directions(self, stored: list[str]) -> None:
        """Objectives of plugin metrics that could not be imported (direction :data:`STORED`) take the directions
        the stored Optuna study was created with."""
        if any(o.direction == STORED for o in self.objectives) and len(stored) == len(self.objectives):
            self.objectives = [
                Objective(o.metric, s if o.direction == STORED else o.direction)
                for o, s in zip(self.objectives, stored, strict=True)
            ]

    def configurations(self) -> list[dict[str, Any]]:
        """Every grid combination as dotted path -> value (one empty dict when there is no grid)."""
        combos: dict[Any, dict[str, Any]] = {}  # by a hashable form: a list's `in` made 10,000 configurations 5 s
        for grid in self.grid or [{}]:
            keys = list(grid)
            for values in itertools.product(*(grid[k] for k in keys)):
                combo = dict(zip(keys, values, strict=True))
                combos.setdefault(_hashable(combo), combo)
        return list(combos.values())

    @functools.cached_property
    def _grid_size(self) -> int:
        """How many configurations the grid holds: a worker's progress line asks for it at every trial."""
        return len(self.configurations())

    def trial_config(self, params: dict[str, Any], seed: int) -> dict[str, Any]:
        """The base config with ``params`` applied and ``seed`` set (not yet resolved)."""
        config = copy.deepcopy(self.config)
        for path, value in params.items():
            set_dotted(config, path, copy.deepcopy(value))
        config["seed"] = seed
        return config

    def signature(self) -> str:
        """Hash of everything that defines the search space; a change refuses to resume."""
        config = resolve(self.config)
        for path, earlier in LATER_KEYS.items():
            *sections, key = path.split(".")
            parent = functools.reduce(lambda node, section: node[section], sections, config)
            if parent.get(key) == earlier:
                del parent[key]
        return stable_hash(
            {
                "config": config,
                "grid": self.grid,
                "seeds": self.seeds,
                "tune": [d.__dict__ for d in self.tune],
                "objectives": [o.__dict__ for o in self.objectives],
            }
        )

    def race_design(self) -> dict[str, Any] | None:
        """The race's design as stored with its study (None: no race): a change refuses to resume the race."""
        return None if self.race is None else dataclasses.asdict(self.race)

    def space_size(self) -> int | None:
        """Distinct configurations of the tuned space (None: a continuous range makes it unbounded)."""
        sizes = [d.size() for d in self.tune]
        return None if None in sizes else math.prod(sizes)

    @property
    def trial_budget(self) -> int | None:
        """Configurations a tuning study runs: ``n_trials``, at most the size of a finite space, where any sampler
        could only repeat itself beyond it (None: a time budget only)."""
        if not self.n_trials:
            return None
        size = self.space_size()
        return self.n_trials if size is None else min(self.n_trials, size)

    def total_trials(self) -> int | None:
        """Trials a complete run holds: grid size x seeds, or budget x seeds when tuning (None: time budget only)."""
        if self.is_tuning:
            budget = self.trial_budget
            return None if budget is None else budget * len(self.seeds)
        return self._grid_size * len(self.seeds)

    def expected_trials(
        self,
        pruned: int = 0,
        results: dict[tuple[str, int], float] | None = None,
        failed: Collection[tuple[str, int]] = (),
    ) -> int | None:
        """:meth:`total_trials` less the other seeds of ``pruned`` configurations, which never run; in a race, the
        pairs its rounds so far ask for, given the completed trials' first-objective ``results`` and the pairs
        ``failed`` with no attempt left."""
        if self.race is not None:
            return sum(study_plan(self, results or {}, failed).seeds.values())
        total = self.total_trials()
        return None if total is None else total - pruned * (len(self.seeds) - 1)

    def supervision(self, params: dict[str, Any]) -> str | None:
        """What the configuration's stage-3 segmenter learns from (``pseudo`` or ``ground_truth``; None: no stage 3)."""
        if "segment" not in self.config and not any(path.split(".")[0] == "segment" for path in params):
            return None  # the default has none: no need to resolve the config
        segment = resolve(self.trial_config(params, 0)).get("segment")
        return segment["masks"] if isinstance(segment, dict) else None

    def is_baseline(self, params: dict[str, Any]) -> bool:
        return self.baseline is not None and all(params.get(k) == v for k, v in self.baseline.items())

    def describe(self, name: str | None = None) -> str:
        """One line: the study's name (``name``: the Optuna study's, ``<name>.2`` after ``--new``), search space,
        seeds and objective."""
        if self.is_tuning:
            budget = [_count(self.trial_budget, "configuration")] if self.n_trials else []
            budget += [f"{self.timeout:g} s"] if self.timeout else []
            space = f"{self.sampler} over {', '.join(d.path for d in self.tune)} ({' / '.join(budget)})"
        else:
            space = f"grid of {_count(len(self.configurations()), 'configuration')}"
        goal = ", ".join(f"{o.direction} {o.metric}" for o in self.objectives)
        pruning = f"; {self.pruner.name} pruner on per-epoch {self.pruner.on}" if self.pruner else ""
        race = self.race
        seeds = _count(len(self.seeds), "seed") if race is None else f"{race.initial} to {race.maximum} seeds"
        racing = f"; {race.describe()}" if race else ""
        return f"study '{name or self.name}': {space} x {seeds}; objective: {goal}{pruning}{racing}"


def _hashable(value: Any) -> Any:
    """``value`` with its mappings and lists as tuples, equal and hashing alike where ``value`` compares equal."""
    if isinstance(value, dict):
        return frozenset((key, _hashable(item)) for key, item in value.items())
    if isinstance(value, list):
        return tuple(_hashable(item) for item in value)
    return value


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
