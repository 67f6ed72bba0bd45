"""Reading a study file: ``extends`` chains, the search block, seeds, objectives, pruner, race, loggers and the
reference, each checked with a one-line error naming the file and key; then every configuration checked as a trial
config before any work starts. Only safe YAML loading is used; nothing is imported but the listed plugins."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ablate._plugins import PluginError, load_components
from ablate._reference import Reference, load_reference
from ablate._registries import LOGGERS, METRICS
from ablate._registry import did_you_mean
from ablate.cache._store import StageCache, stable_hash
from ablate.config._check import check_segment, validate
from ablate.config._resolve import DEFAULTS, EXECUTION_KEYS, ConfigError, load_yaml, merge
from ablate.pipeline._metrics import is_metric, lower_is_better, stage_prefix
from ablate.pipeline._trial import load_data
from ablate.study._pruning import PrunerSpec, parse_pruner
from ablate.study._race import RaceSpec, parse_race
from ablate.study._spec import SAMPLERS, STORED, STUDY_KEYS, Distribution, Objective, Study

#: What one study may ask for: beyond these no machine runs it, and enumerating it alone takes minutes and gigabytes.
MAX_CONFIGURATIONS = 10_000  # a grid's configurations (a larger space is tuned: tune: with sampler: grid or tpe)
MAX_SEEDS = 1_000
MAX_TRIALS = 1_000_000  # configurations (or n_trials) x seeds


def _fail(path: Path, message: str) -> ConfigError:
    return ConfigError(f"{path}: {message}")


#: Where the files a study extends lie, kept in the merged mapping by :func:`_read` (not a key a file can set).
PLUGIN_FOLDERS = " plugin folders"


def _read(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Raw study mapping with ``extends:`` applied (cycles refused)."""
    if path.resolve() in seen:
        raise _fail(path, "extends: circular reference")
    raw = load_yaml(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise _fail(path, "expected a mapping at the top level")
    for key in raw:
        if key in DEFAULTS and key not in STUDY_KEYS:
            raise _fail(
                path,
                f"{key}: a trial config key, not a study key; put it under config:, "
                f"or run the file as one trial with `ablate trial {path}`",
            )
        if key not in STUDY_KEYS:
            hint = did_you_mean(key, STUDY_KEYS)
            raise _fail(path, f"{key}: unknown study key{hint}; study keys: {', '.join(STUDY_KEYS)}")
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    parent_path = (path.parent / str(parent)).resolve()
    if not _is_file(parent_path):
        raise _fail(path, f"extends: {parent} does not exist")
    base = _read(parent_path, (*seen, path.resolve()))
    base.pop("name", None)
    if isinstance(base.get("reference"), str):  # relative to the file that names it, not to the one extending it
        base["reference"] = str(parent_path.parent / base["reference"])
    # so are its plugins: they lie beside it (the folders of every file up the chain, nearest first)
    base[PLUGIN_FOLDERS] = [str(parent_path.parent), *base.get(PLUGIN_FOLDERS, [])]
    merged = {**base, **{k: v for k, v in raw.items() if k != "config"}}
    merged["config"] = merge(base.get("config") or {}, raw.get("config") or {})
    return merged


def _is_file(path: Path) -> bool:
    """Whether ``path`` is a file; False, not an OSError, for a name no file system holds (too long, NUL)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _loggers(path: Path, raw: Any, plugins_loaded: bool = True) -> list[dict[str, Any]]:
    specs = [{"name": s} if isinstance(s, str) else s for s in (raw or [])]
    if not isinstance(raw, list | None) or not all(isinstance(s, dict) for s in specs):
        raise _fail(path, "loggers: expected a list of logger names or {name: ..., params}")
    for i, spec in enumerate(specs):
        if spec.get("name") not in LOGGERS and not plugins_loaded:
            continue  # a plugin's logger; only running the study needs it
        if spec.get("name") not in LOGGERS:
            raise _fail(path, f"loggers[{i}].name: {LOGGERS.unknown_message(spec.get('name'))}")
        problems = LOGGERS.check_params(spec["name"], LOGGERS.spec_params(spec))
        if problems:
            raise _fail(path, f"loggers[{i}]: {'; '.join(problems)}")
    return specs


def _reference(path: Path, raw: Any) -> Reference | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise _fail(path, f"reference: expected the path of a reference file, got {raw!r}")
    target = path.parent / raw
    if not _is_file(target):
        raise _fail(path, f"reference: {target} does not exist")
    return load_reference(target)


def _objectives(path: Path, raw: Any, plugins_loaded: bool = True) -> list[Objective]:
    if raw is None:  # the metric registered as the default objective
        raw = METRICS.tagged("default_objective")
        if len(raw) != 1:
            found = ", ".join(raw) or "none"
            raise _fail(path, f"objective: not set, and no single metric is registered as default (found: {found})")
    items = raw if isinstance(raw, list) else [raw]
    objectives = []
    for item in items:
        spec = {"metric": item} if isinstance(item, str) else item
        if not isinstance(spec, dict) or not isinstance(spec.get("metric"), str):
            raise _fail(path, f"objective: expected a metric name or {{metric, direction}}, got {item!r}")
        if not is_metric(spec["metric"]) and not plugins_loaded:  # a plugin's metric: its direction is stored
            objectives.append(Objective(spec["metric"], spec.get("direction", STORED)))
            continue
        if not is_metric(spec["metric"]):
            raise _fail(path, f"objective: {METRICS.unknown_message(spec['metric'])}")
        default = "minimize" if lower_is_better(spec["metric"]) else "maximize"
        direction = spec.get("direction", default)
        if direction not in ("maximize", "minimize"):
            raise _fail(path, f"objective.direction: expected maximize or minimize, got {direction!r}")
        if any(o.metric == spec["metric"] for o in objectives):
            raise _fail(path, f"objective: {spec['metric']} is listed twice")
        objectives.append(Objective(spec["metric"], direction))
    return objectives


def _distribution(path: Path, dotted: str, spec: Any) -> Distribution:
    where = f"tune.{dotted}"
    if isinstance(spec, list):
        spec = {"choices": spec}
    if not isinstance(spec, dict):
        raise _fail(path, f"{where}: expected {{low, high}} or {{choices: [...]}}, got {spec!r}")
    if "choices" in spec:
        if not isinstance(spec["choices"], list) or not spec["choices"]:
            raise _fail(path, f"{where}.choices: expected a non-empty list")
        _refuse_repeats(path, f"{where}.choices", spec["choices"])
        return Distribution(dotted, "categorical", choices=tuple(spec["choices"]))
    unknown = set(spec) - {"low", "high", "log", "step", "type"}
    if unknown:
        raise _fail(path, f"{where}: unknown keys {sorted(unknown)}; use low, high, log, step, type")
    low, high = spec.get("low"), spec.get("high")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)) or low >= high:
        raise _fail(path, f"{where}: needs numbers low < high, got low={low!r} high={high!r}")
    kind = spec.get("type") or ("int" if isinstance(low, int) and isinstance(high, int) else "float")
    if kind not in ("int", "float"):
        raise _fail(path, f"{where}.type: expected int or float, got {kind!r}")
    if kind == "int" and not all(float(v).is_integer() for v in (low, high)):
        raise _fail(path, f"{where}: an int range needs whole-number bounds, got low={low!r} high={high!r}")
    log, step = spec.get("log", False), spec.get("step")
    if not isinstance(log, bool):
        raise _fail(path, f"{where}.log: expected true or false, got {log!r}")
    if log and low <= 0:
        raise _fail(path, f"{where}: log scale needs low > 0")
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, int | float) or step <= 0:
            raise _fail(path, f"{where}.step: expected a number > 0, got {step!r}")
        if kind == "int" and not float(step).is_integer():
            raise _fail(path, f"{where}.step: an int range needs a whole-number step, got {step!r}")
        if log:  # Optuna samples a log range continuously
            raise _fail(path, f"{where}: log and step cannot be combined; drop one of them")
    return Distribution(dotted, kind, low, high, log, step)


def load_study(
    path: str | Path,
    check_configs: bool = True,
    check_files: bool = True,
    need_plugins: bool = True,
    build_networks: bool = True,
) -> Study:
    """Parse and validate a study file.

    Args:
        path: the study YAML.
        check_configs: validate the trial config of every grid combination (and tune bounds).
        check_files: also load every distinct dataset (generating synthetic ones) and require checkpoint
            files, so missing or broken data is reported before any training starts.
        need_plugins: False for commands that only read stored trials (status, report): a plugin that does not
            import is then noted in ``Study.missing_plugins`` rather than refused, and the direction of a plugin
            metric's objective comes from the storage.
        build_networks: with ``check_configs``, also build every configuration's networks on the meta device
            (False for the commands that only read stored trials: names and values are still checked).

    Raises:
        ConfigError: one line naming the file and the field (and grid combination) at fault.
    """
    path = Path(path)
    raw = _read(path)
    plugins = raw.get("plugins") or []
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise _fail(path, "plugins: expected a list of module names")
    missing_plugins = ""
    try:
        load_components(plugins, origin=f"{path}: plugins", folder=[path.parent, *raw.pop(PLUGIN_FOLDERS, [])])
    except PluginError as exc:
        if need_plugins:
            raise
        missing_plugins = str(exc)
    config = raw.get("config") or {}
    if not isinstance(config, dict):
        raise _fail(path, "config: expected a mapping")
    config = {**config, "plugins": sorted(set(config.get("plugins") or []) | set(plugins))}

    grids = raw.get("grid") or []
    grids = [grids] if isinstance(grids, dict) else grids
    if not isinstance(grids, list) or not all(isinstance(g, dict) for g in grids):
        raise _fail(path, "grid: expected a mapping of dotted path -> list of values, or a list of them")
    for grid in grids:
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                raise _fail(path, f"grid.{key}: expected a non-empty list of values, got {values!r}")
            _refuse_repeats(path, f"grid.{key}", values)
        _refuse_overlaps(path, "grid", list(grid))
    _refuse_large_grid(path, grids)
    tune_raw = raw.get("tune") or {}
    if not isinstance(tune_raw, dict):
        raise _fail(path, "tune: expected a mapping of dotted path -> distribution")
    tune = [_distribution(path, k, v) for k, v in tune_raw.items()]
    _refuse_overlaps(path, "tune", list(tune_raw))
    if tune and grids:
        raise _fail(path, "grid and tune cannot be combined in one study; use sampler: grid to tune over a grid")

    race = _race(path, raw, grids, tune)
    seeds_raw = race.maximum if race else raw.get("seeds", [0])
    count = isinstance(seeds_raw, int) and not isinstance(seeds_raw, bool)
    size = len(seeds_raw) if isinstance(seeds_raw, list) else seeds_raw if count else 0
    if size > MAX_SEEDS:
        raise _fail(path, f"seeds: {size:,} seeds; a study runs at most {MAX_SEEDS:,} (a race: seeds.max)")
    seeds = list(range(seeds_raw)) if count else seeds_raw
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise _fail(path, f"seeds: expected a positive count or a list of non-negative integers, got {seeds_raw!r}")
    if len(set(seeds)) != len(seeds):
        raise _fail(path, f"seeds: duplicates in {seeds}")

    sampler = raw.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        raise _fail(path, f"sampler: expected one of {', '.join(SAMPLERS)}, got {sampler!r}")
    n_trials, timeout = raw.get("n_trials"), raw.get("timeout")
    if n_trials is not None and (isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1):
        raise _fail(path, f"n_trials: expected a positive integer, got {n_trials!r}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
        raise _fail(path, f"timeout: expected seconds > 0, got {timeout!r}")
    if tune and n_trials is None and timeout is None:
        raise _fail(path, "tune: needs a budget: n_trials and/or timeout")
    configurations = n_trials if tune else _grid_size(grids)
    if configurations and configurations * len(seeds) > MAX_TRIALS:
        what = "n_trials" if tune else "grid"
        raise _fail(
            path,
            f"{what}: {configurations:,} configurations x {len(seeds):,} seed{'s' * (len(seeds) > 1)} = "
            f"{configurations * len(seeds):,} "
            f"trials; a study runs at most {MAX_TRIALS:,}",
        )
    if sampler in ("grid", "bruteforce"):  # they enumerate values: float ranges need a step
        for d in tune:
            if not d.choices and d.step is None and d.kind != "int":
                raise _fail(path, f"tune.{d.path}: sampler {sampler} needs choices or a step")

    pruner = _pruner(path, raw.get("pruner"), tune, raw.get("objective"))
    baseline = raw.get("baseline")
    if baseline is not None and not isinstance(baseline, dict):
        raise _fail(path, "baseline: expected a mapping of dotted path -> value from the grid")
    name = raw.get("name") or path.stem
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
        raise _fail(path, f"name: use letters, digits, '-' and '_' only, got {name!r}")
    study = Study(
        path=path,
        name=name,
        description=str(raw.get("description") or ""),
        config=config,
        grid=grids,
        tune=tune,
        sampler=sampler,
        n_trials=n_trials,
        timeout=timeout,
        seeds=seeds,
        objectives=_objectives(path, raw.get("objective"), plugins_loaded=not missing_plugins),
        baseline=baseline,
        plugins=plugins,
        reference=_reference(path, raw.get("reference")),
        loggers=_loggers(path, raw.get("loggers"), plugins_loaded=not missing_plugins),
        pruner=pruner,
        race=race,
        missing_plugins=missing_plugins,
    )
    if not any(key in raw for key in ("config", "grid", "tune")):
        raise _fail(
            path,
            "a study needs at least one of config, grid or tune; a minimal study is "
            "'grid: {transfer.lambda: [0.5, 1.0]}' (every other setting takes the defaults)",
        )
    if check_configs and not missing_plugins:  # configs naming a plugin's components cannot be checked without it
        _check_configs(study, check_files, build_networks)
    # after the configurations: a misspelt grid path is named as such, not as a baseline that matches nothing
    if baseline is not None and not tune and not any(study.is_baseline(c) for c in study.configurations()):
        raise _fail(path, f"baseline: {json.dumps(baseline)} matches no grid configuration")
    return study


def _pruner(path: Path, raw: Any, tune: list[Distribution], objective: Any) -> PrunerSpec | None:
    if raw is None:
        return None
    if not tune:
        raise _fail(path, "pruner: only a tuning study (tune:) prunes; a grid runs every configuration to the end")
    if isinstance(objective, list) and len(objective) > 1:
        raise _fail(path, "pruner: Optuna prunes single-objective studies only; name one objective")
    try:
        return parse_pruner(raw)
    except ValueError as exc:
        raise _fail(path, f"pruner: {exc}") from None


def _race(path: Path, raw: dict[str, Any], grids: list[Any], tune: list[Distribution]) -> RaceSpec | None:
    """The study's race, or None; refused where it cannot run (tuning, no baseline to race against)."""
    if "race" not in raw:
        if isinstance(raw.get("seeds"), dict):
            raise _fail(path, "seeds: {initial, max} is the seeds of a race: add a race: block (or give a count)")
        return None
    if tune:
        raise _fail(path, "race: races the configurations of a grid; a tuning study gives each its seeds")
    try:
        race = parse_race(raw["race"], raw.get("seeds"))
    except ValueError as exc:
        raise _fail(path, str(exc)) from None
    if race.against == "baseline" and raw.get("baseline") is None:
        raise _fail(path, "race: against: baseline needs the study's baseline: (or race against: best)")
    return race


def _refuse_repeats(path: Path, where: str, values: list[Any]) -> None:
    """One configuration, not two: a value listed twice is most likely a typo for another value."""
    repeated = [v for i, v in enumerate(values) if v in values[:i]]
    if repeated:
        raise _fail(path, f"{where}: {repeated[0]!r} is listed twice (1 and 1.0 are the same value)")


def _grid_size(grids: list[dict[str, list[Any]]]) -> int:
    """Configurations the grids hold, counted, not enumerated (grids that share a configuration count it twice)."""
    return sum(math.prod(len(values) for values in grid.values()) for grid in grids)


def _refuse_large_grid(path: Path, grids: list[dict[str, list[Any]]]) -> None:
    size = _grid_size(grids)
    if size > MAX_CONFIGURATIONS:
        axes = " x ".join(str(len(values)) for grid in grids for values in grid.values())
        raise _fail(
            path,
            f"grid: {size:,} configurations ({axes} values); a grid holds at most {MAX_CONFIGURATIONS:,}. Search a "
            "larger space with tune: (sampler: tpe, or sampler: grid with n_trials to run part of it)",
        )


def _refuse_overlaps(path: Path, section: str, keys: list[str]) -> None:
    """Refuse two dotted paths of one grid (or of tune) where one lies inside the other: the inner value would
    silently replace part of the outer one, or be dropped by it."""
    for outer in keys:
        for inner in keys:
            if inner.startswith(f"{outer}."):
                raise _fail(path, f"{section}: '{inner}' lies inside '{outer}'; set one of them, not both")


def _base_config_error(study: Study, check_files: bool, build_networks: bool) -> str | None:
    """The error of the study's ``config:`` with no grid or tuned value applied, or None when it is valid."""
    try:
        validate(study.trial_config({}, study.seeds[0]), check_files=check_files, build=build_networks)
    except ConfigError as exc:
        return str(exc)
    return None


def _check_objectives(objectives: list[Objective], resolved: dict[str, Any], train_masks: bool | None) -> None:
    """Raise ``ConfigError`` when a trial of ``resolved`` could not compute an objective: every trial would train
    and then fail with the objective undefined."""
    for objective in objectives:
        prefix = stage_prefix(objective.metric)
        metric = objective.metric.removeprefix(prefix)
        if resolved.get("metrics") and metric not in resolved["metrics"]:
            computed = ", ".join(resolved["metrics"])
            raise ConfigError(f"objective {objective.metric}: `metrics` computes only {computed}; add {metric}")
        if prefix == "seg_" and not resolved.get("segment"):
            raise ConfigError(f"objective {objective.metric}: a segmenter's metric needs a `segment:` stage")
        if prefix == "train_" and train_masks is False:
            raise ConfigError(f"objective {objective.metric}: the train split of this data has no masks to score")


def _check_configs(study: Study, check_files: bool, build_networks: bool) -> None:
    samples = study.configurations()
    if study.tune:  # both ends of every range and every choice must form a valid config
        samples = [{d.path: v} for d in study.tune for v in (d.choices or (d.low, d.high))]
    train_masks: dict[str, bool] = {}  # each distinct data spec, loaded once: whether its train split has masks
    combinations: dict[str, list[str]] = {}  # each distinct combination of components, built once
    same_as: dict[str, dict[str, Any]] = {}
    for params in samples:
        label = f" (configuration {json.dumps(params, default=str)})" if params else ""
        try:
            config = study.trial_config(params, study.seeds[0])
            resolved = validate(config, check_files=check_files, build=build_networks, combinations=combinations)
            has_train_masks = None  # unknown without reading the data
            if check_files:
                key = stable_hash(resolved["data"])
                if key not in train_masks:
                    train_masks[key] = load_data(resolved["data"], StageCache()).train.masks is not None
                has_train_masks = train_masks[key]
                check_segment(resolved.get("segment"), resolved["data"], has_train_masks)
            _check_objectives(study.objectives, resolved, has_train_masks)
        except ConfigError as exc:
            if params and _base_config_error(study, check_files, build_networks) == str(exc):
                raise _fail(study.path, f"config: {exc}") from None  # not the grid value's fault
            raise _fail(study.path, f"{exc}{label}") from None
        if not study.tune:  # two grid configurations that run one trial config would count it twice
            key = stable_hash({k: v for k, v in resolved.items() if k not in EXECUTION_KEYS})
            if key in same_as:
                raise _fail(
                    study.path,
                    f"grid: configurations {json.dumps(same_as[key], default=str)} and "
                    f"{json.dumps(params, default=str)} give the same trial config",
                )
            same_as[key] = params
