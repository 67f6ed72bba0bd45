"""``ablate list``, ``ablate trial``, ``ablate validate`` and ``ablate cache``: components, one configuration, a
study file checked, the stage cache."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from ablate.cli._common import EXIT_FAILED, _check_output, _failure_line


def _parse_sets(pairs: list[str]) -> dict[str, Any]:
    from ablate.config._resolve import parse_yaml

    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {pair!r}: expected key.path=value")
        try:
            overrides[key] = parse_yaml(value)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ValueError(f"--set {pair!r}: the value is not valid YAML: {problem}") from None
    return overrides


def _format_value(value: float) -> str:
    return "nan" if isinstance(value, float) and math.isnan(value) else f"{value:.4f}"


def cmd_list(args: argparse.Namespace) -> int:
    from ablate._index import component_index

    index = component_index(args.plugin or [])  # stored: listing imports no component while none changed
    kinds = [args.kind] if args.kind else list(index)
    for kind in kinds:
        if kind not in index:
            raise ValueError(f"unknown kind '{kind}'; kinds: {', '.join(index)}")
        print(f"{kind}: {index[kind]['contract']}")
        for entry in index[kind]["entries"]:
            print(f"  {entry['name']:<18} {entry['description']}")
            if entry["params"]:
                print(f"  {'':<18}   ({', '.join(entry['params'])})")
        print()
    return 0


def _load_config(path: str | None, sets: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    from ablate.config._resolve import ConfigError, load_yaml

    config = load_yaml(path) if path else {}
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level")
    return config, _parse_sets(sets)


def cmd_trial(args: argparse.Namespace) -> int:
    from ablate import ConfigError, load_components, run_trial
    from ablate._results import strict_json
    from ablate.pipeline._postprocess import MARKS

    config, overrides = _load_config(args.config, args.set)
    study_keys = " and ".join(f"{key}:" for key in ("config", "grid", "tune") if key in config)
    if study_keys:
        raise ConfigError(
            f"{args.config}: a study file (it has {study_keys}), not a trial config; "
            f"run it with `ablate run {args.config}`"
        )
    plugins = config.get("plugins")
    if args.config and isinstance(plugins, list) and all(isinstance(p, str) for p in plugins):
        load_components(plugins, origin=f"{args.config}: plugins", folder=Path(args.config).parent)
    if args.json:
        _check_output("--json", args.json)  # before the training, not after it
    try:
        result = run_trial(config, overrides, progress=not args.quiet)
    except ConfigError as exc:  # named by where the config came from: the file, the --set values or both
        field = str(exc).split(":", 1)[0]
        related = [item for item in args.set if _overlaps(item.partition("=")[0], field)]
        sets = " ".join(f"--set {item}" for item in related or args.set)
        where = f"{args.config} (with {sets})" if args.config and sets else args.config or sets or "defaults"
        raise ConfigError(f"{where}: {exc}") from None
    except (ValueError, OSError) as exc:  # raised by a component as the trial ran: a failed trial, not bad input
        print(_failure_line("trial failed", exc), file=sys.stderr)
        return EXIT_FAILED
    label = "".join(f" [{mark}: {MARKS[mark][1]}]" for mark in result.marks)
    print(f"metrics on the test split{label}:")
    for name, value in result.metrics.items():
        print(f"  {name:<20} {_format_value(value)}")
    timings = ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items())
    print(f"trainings executed: {result.trainings}; time: {timings}")
    for checkpoint in result.checkpoints:
        print(f"checkpoint: {checkpoint}")
    if args.json:
        fields = {k: v for k, v in result.__dict__.items() if k != "gallery"}  # arrays belong in the report
        Path(args.json).write_text(strict_json(fields))
    return 0


def _overlaps(key: str, field: str) -> bool:
    """Whether the dotted ``key`` of a ``--set`` is the config ``field`` an error names, inside it, or holds it."""
    return key == field or key.startswith(f"{field}.") or field.startswith(f"{key}.")


def cmd_validate(args: argparse.Namespace) -> int:
    from ablate.study import load_study

    study = load_study(args.study, check_files=not args.no_files)
    skipped = " (data and checkpoint files not checked)" if args.no_files else ""
    print(f"{args.study}: valid{skipped}; {study.describe()}")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from ablate import load_components
    from ablate.cache._store import STAGES, StageCache
    from ablate.config._schema import did_you_mean

    load_components()  # the component modules whose code the entries recorded
    if os.getcwd() not in sys.path:  # as `python -m` does: plugins beside the studies import from their folder
        sys.path.insert(0, os.getcwd())
    pruning = args.prune or args.prune_corrupt or args.prune_outdated
    if args.stage and not pruning:
        raise ValueError(f"--stage {args.stage}: only with --prune, --prune-corrupt or --prune-outdated")
    if args.stage and args.stage not in STAGES:
        hint = did_you_mean(args.stage, STAGES)
        raise ValueError(f"--stage {args.stage}: no such stage{hint}; stages: {', '.join(STAGES)}")
    cache = StageCache(args.dir)
    if pruning:
        removed = cache.prune(stage=args.stage, corrupt_only=args.prune_corrupt, outdated_only=args.prune_outdated)
        print(f"removed {removed} entries from {cache.root}")
        return 0
    totals: dict[str, list[int]] = {}
    changed: set[str] = set()
    unchecked: set[str] = set()
    for stage, folder, size, intact in cache.entries():
        entry = totals.setdefault(stage, [0, 0, 0, 0])
        modules, unimportable = cache.code_changes(folder)
        changed |= set(modules)
        unchecked |= set(unimportable)
        entry[0] += 1
        entry[1] += size
        entry[2] += 0 if intact else 1
        entry[3] += 1 if modules else 0
    print(f"stage cache: {cache.root}")
    width = max(map(len, totals), default=0)
    for stage, (count, size, corrupt, stale) in totals.items():
        extra = (f", {corrupt} corrupt" if corrupt else "") + (f", {stale} made by code that changed" if stale else "")
        print(f"  {stage:<{width}} {count:>5} entries {size / 2**20:>9.1f} MiB{extra}")
    if changed:
        print(f"  changed since: {', '.join(sorted(changed))} (never served again; --prune-outdated removes them)")
    abandoned = len(cache.abandoned_builds())
    if abandoned:
        print(f"  {abandoned} unfinished builds of killed processes (--prune-corrupt removes them)")
    if unchecked:
        print(
            f"  not checked: {', '.join(sorted(unchecked))} (do not import here; run `ablate cache` where the "
            "studies' plugins import, e.g. their folder: --prune-outdated keeps their entries)"
        )
    if not totals:
        print("  (empty)")
    return 0
