"""Command line: ``ablate list | trial | validate | run | status | report | cache``.

Every expected failure (bad config, unknown component, broken data, divergence, Ctrl-C) ends
with one ``ablate: error: ...`` line and a non-zero exit code instead of a traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell tool killed by a closed pipe returns
PARENT_PID = "ABLATE_PARENT_PID"  # the --workers parent's pid, in its children's environment
PARENT_POLL = 1.0  # seconds between a worker's checks that its parent still runs


def _parse_sets(pairs: list[str]) -> dict[str, Any]:
    from ablate._config import parse_yaml

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


def _count(minimum: int) -> Any:
    """An argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    return parse


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
    from ablate._config import ConfigError, load_yaml

    config = load_yaml(path) if path else {}
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level")
    return config, _parse_sets(sets)


def cmd_trial(args: argparse.Namespace) -> int:
    from ablate import ConfigError, load_components, run_trial
    from ablate._results import strict_json

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
    label = " (oracle: a step used the ground truth)" if result.oracle else ""
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


def _study(args: argparse.Namespace, read_only: bool = False) -> Any:
    """The study file; ``read_only`` (status, report, export) reads the stored trials only: it checks the study's
    names and values but builds no network to check them (``run`` did), loads no data and works without the
    plugins."""
    from ablate.study import load_study

    checks = not read_only
    study = load_study(args.study, check_files=checks, need_plugins=checks, build_networks=checks)
    if study.missing_plugins:
        print(f"ablate: note: {study.missing_plugins}; reading the stored trials without it", file=sys.stderr)
    return study


def _stored(args: argparse.Namespace) -> Any:
    """The study's stored trials, opened for reading (a study never run is refused; nothing is created)."""
    from ablate.storage import StoredStudy

    stored = StoredStudy(_study(args, read_only=True), out=args.out, storage=args.storage, read_only=True)
    stored.open(create=False)
    return stored


def cmd_run(args: argparse.Namespace) -> int:
    import signal

    # a cluster's time limit or preemption (SLURM, Kubernetes) and a plain `kill` send SIGTERM: stop as Ctrl-C does,
    # marking the running trial for the next run, instead of leaving it to the stale-worker timeout
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _run(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _run(args: argparse.Namespace) -> int:
    from ablate.study import StudyRunner

    runner = StudyRunner(
        _study(args), args.out, args.storage, quiet=args.quiet, fail_fast=args.fail_fast, retries=args.retries
    )
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    runner.open(new=args.new and not args.worker)
    if args.worker:  # a child of --workers: the parent queued everything
        _stop_with_parent(int(os.environ.get(PARENT_PID, os.getppid())))
        sys.stdout, sys.stderr = (_Prefixed(stream, f"[worker {args.worker}] ") for stream in (sys.stdout, sys.stderr))
        outcome = runner.work()
        return EXIT_INTERRUPTED if outcome.interrupted else 0
    runner.enqueue_missing()
    stored = runner.stored
    done, total = stored.progress()
    from optuna.trial import TrialState

    from ablate.storage import masked_url

    queued, running = (len(stored.trials((state,))) for state in (TrialState.WAITING, TrialState.RUNNING))
    elsewhere = f", {running} running in other processes" if running else ""
    print(stored.study.describe(stored.optuna_study.study_name))
    print(f"storage: {masked_url(stored.url)}; {done}/{total or '?'} done, {queued} queued{elsewhere}")
    _warn_changed_code(args, stored)
    interrupted = _work(args, runner)
    return _finish(args, stored, interrupted)


def _stop_with_parent(parent: int) -> None:
    """SIGTERM this worker (a Ctrl-C: its trial is marked for resume) once ``parent`` is gone. A parent killed with
    SIGKILL cannot pass a signal on, and the workers, each in a session of its own, outlived it: they ran the rest of
    the study and no report was written."""
    import signal
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _warn_changed_code(args: argparse.Namespace, stored: Any) -> None:
    """Say when stored trials were computed by code that has changed since: they are not run again by themselves."""
    stale, completed, modules = stored.changed_code()
    if stale:
        print(
            f"warning: {stale} of {completed} completed trials were computed by code that has changed since "
            f"({', '.join(modules)}); they keep the old code's numbers: `ablate run {args.study} --new` runs the "
            "study again beside them (the stage cache recomputes only what the change touched)",
            file=sys.stderr,
        )


class _Prefixed:
    """A text stream that starts every line with ``prefix``: the lines of ``--workers`` children share one log."""

    def __init__(self, stream: Any, prefix: str) -> None:
        self._stream, self._prefix, self._line_start = stream, prefix, True

    def write(self, text: str) -> int:
        for piece in text.splitlines(keepends=True):  # print() writes a line's text and its newline separately
            self._stream.write(self._prefix + piece if self._line_start else piece)
            self._line_start = piece.endswith("\n")
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, ... of the stream it writes to
        return getattr(self._stream, name)


def _work(args: argparse.Namespace, runner: Any) -> bool:
    """Run the queue in this process or in ``--workers`` child processes; True if interrupted."""
    if args.workers <= 1:
        return runner.work().interrupted
    import signal
    import subprocess

    threads = max(1, (os.cpu_count() or 1) // args.workers)
    command = [
        sys.executable,
        "-m",
        "ablate",
        "run",
        str(runner.study.path),
        "--storage",
        runner.stored.url,
        "--out",
        str(runner.stored.folder),
        "--threads",
        str(threads),
        "--retries",
        str(args.retries),
    ]
    command += ["--fail-fast"] if args.fail_fast else []
    # bars of several processes would overwrite each other in a terminal; a log gets every worker's epoch lines
    command += ["--quiet"] if args.quiet or sys.stderr.isatty() else []
    from ablate._device import worker_gpus

    env = {**os.environ, "ABLATE_WORKERS": str(args.workers), PARENT_PID: str(os.getpid())}
    # each child in a session of its own, so that a terminal's Ctrl-C and a `kill -INT` or `kill -TERM` of this process
    # reach the children the same way: once, passed on below (a signal to the parent alone used to leave them running)
    children = [
        subprocess.Popen(
            [*command, "--worker", f"{number}/{args.workers}"],
            env=env if gpu is None else {**env, "CUDA_VISIBLE_DEVICES": gpu},
            start_new_session=True,
        )
        for number, gpu in enumerate(worker_gpus(args.workers), start=1)
    ]
    try:
        codes = [child.wait() for child in children]
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: let each child mark its running trial interrupted, then stop
        for child in children:
            if child.poll() is None:  # SIGTERM: a run started in the background (`&`, nohup) ignores SIGINT
                child.send_signal(signal.SIGTERM)
        codes = [child.wait() for child in children]
        return True
    return any(code == EXIT_INTERRUPTED for code in codes)


def _finish(args: argparse.Namespace, stored: Any, interrupted: bool) -> int:
    from ablate._results import latest_per_identity, trials_frame

    latest = latest_per_identity(trials_frame(stored))
    done, total = stored.progress()
    states = latest["state"] if not latest.empty else None
    failed = latest[~states.isin(["COMPLETE", "PRUNED"])] if states is not None else latest
    pruned = int(states.eq("PRUNED").sum()) if states is not None else 0
    if not args.no_report:
        from ablate._report import write_report

        path = write_report(stored)
        print(f"report: {path}")
    summary = f"{stored.optuna_study.study_name}: {done - pruned}/{total or done} trials completed"
    summary += f", {pruned} pruned" if pruned else ""
    if interrupted:
        print(f"{summary}; interrupted: run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    unfinished = max(len(failed), (total or 0) - done)  # failed pairs are among those not done
    if unfinished:
        logs = stored.folder / "logs"  # tracebacks of unexpected errors only: a divergence has its one line
        from ablate.storage import masked_url

        where = (f" --out {args.out}" if args.out else "") + (
            f" --storage {masked_url(args.storage)}" if args.storage else ""
        )
        see = f"`ablate status {args.study}{where}`" + (f" and {logs}" if logs.is_dir() else "")
        print(f"{summary}, {unfinished} failed or missing; see {see}", file=sys.stderr)
        return EXIT_FAILED
    print(summary)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    import pandas as pd

    from ablate._results import PER_IMAGE_COLUMNS, trials_frame

    stored = _stored(args)
    frame = trials_frame(stored)
    if frame.empty:
        print("no trials yet")
        return 0
    objectives = [f"metric.{o.metric}" for o in stored.study.objectives]
    internal = ("identity", "config_id", *PER_IMAGE_COLUMNS, "segment_masks", "baseline", "names", "gallery")
    hidden = (*internal, "configuration", "trainings", "oracle")
    columns = [c for c in frame.columns if c not in hidden and (not c.startswith("metric.") or c in objectives)]
    with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_colwidth", 60):
        print(frame[columns].to_string(index=False))
    counts = frame["state"].value_counts().to_dict()
    stale = int((frame["state"].eq("RUNNING") & frame["error"].str.startswith("stale")).sum())
    if stale:  # a killed run's trials stay RUNNING in storage until the next run fails and queues them again
        counts["RUNNING"] = f"{counts['RUNNING']} ({stale} stale: no live worker; the next ablate run runs them again)"
    done, total = stored.progress()
    _warn_changed_code(args, stored)
    print(
        f"\n{done}/{total or '?'} (configuration, seed) pairs done (completed or pruned); trials by state: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ablate._report import write_report

    print(f"report: {write_report(_stored(args))}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import pandas as pd

    from ablate._compare import compare_studies

    outs = args.out or [None] * len(args.studies)
    storages = args.storage or [None] * len(args.studies)
    for option, given in (("--out", outs), ("--storage", storages)):
        if len(given) != len(args.studies):
            raise ValueError(f"{option}: give one per study ({len(args.studies)}), got {len(given)}")
    if args.csv:
        _check_output("--csv", args.csv)
    table = compare_studies(args.studies, outs, args.metric, storages)
    print(f"{table.attrs['metric']}: each configuration against the reference, over the seeds both completed")
    with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_colwidth", 60):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


def _check_output(option: str, path: str) -> None:
    """Refuse an output file whose folder does not exist, naming the option (before any work is done)."""
    if not Path(path).parent.is_dir():
        raise ValueError(f"{option} {path}: no folder {Path(path).parent}")


def cmd_export(args: argparse.Namespace) -> int:
    from ablate._export import chosen_trial, export_trial

    stored = _stored(args)
    trial = chosen_trial(stored, args.trial)
    folder = Path(args.to or stored.folder / "export" / stored.trial_stem(trial.number))
    try:
        export_trial(stored, trial, folder)
    except OSError as exc:  # a folder that cannot be made or written: name it (and the option that chose it)
        raise ValueError(f"{'--to ' if args.to else ''}{folder}: {exc.strerror or exc}") from None
    print(f"trial {trial.number} ({stored.study.objectives[0].metric} {trial.values[0]:.4f}): {folder}")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from ablate import load_components
    from ablate._cache import STAGES, StageCache
    from ablate._schema import did_you_mean

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


def _study_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("study", help="study YAML file")
    p.add_argument("--out", help="study folder (default reports/<study name>)")
    p.add_argument("--storage", help="Optuna storage URL (default sqlite in the study folder)")


def build_parser() -> argparse.ArgumentParser:
    from ablate import __version__

    parser = argparse.ArgumentParser(prog="ablate", description="Ablation studies for weakly supervised segmentation")
    parser.add_argument("--version", action="version", version=f"ablate {__version__}")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("list", help="list registered components with their parameters")
    p.add_argument("kind", nargs="?", help="one kind, e.g. levels")
    p.add_argument("--plugin", action="append", help="also import this plugin module")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("trial", help="train and evaluate one configuration")
    p.add_argument("config", nargs="?", help="trial config YAML (default: the built-in default config)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a dotted config key")
    p.add_argument("--json", metavar="PATH", help="also write the full result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_trial)

    p = sub.add_parser("validate", help="check a study file without running anything")
    p.add_argument("study")
    p.add_argument(
        "--no-files", action="store_true", help="skip data and checkpoint checks (a study for another machine)"
    )
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("run", help="run (or resume) a study: every configuration x seed, then the report")
    _study_args(p)
    p.add_argument("--workers", type=_count(1), default=1, help="worker processes on this machine")
    p.add_argument("--quiet", action="store_true", help="log lines only, no progress bars")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first failed trial")
    p.add_argument("--retries", type=_count(0), default=0, help="re-run a failed trial up to this many times")
    p.add_argument("--new", action="store_true", help="start a new study even if the search space changed")
    p.add_argument("--no-report", action="store_true", help="skip writing the report")
    p.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    p.add_argument("--worker", metavar="K/N", help=argparse.SUPPRESS)  # a child of --workers, named in its lines
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", help="the trials table of a study")
    _study_args(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("report", help="write the report from stored trials (no training)")
    _study_args(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("compare", help="studies side by side: every configuration against the first's baseline")
    p.add_argument("studies", nargs="+", metavar="STUDY", help="study files; the first holds the reference")
    p.add_argument("--out", nargs="+", metavar="DIR", help="each study's folder, in order (default reports/<name>)")
    p.add_argument("--storage", nargs="+", metavar="URL", help="each study's Optuna storage URL, in order")
    p.add_argument("--metric", help="metric to compare (default: the first study's first objective)")
    p.add_argument("--csv", metavar="PATH", help="also write the table as CSV")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("export", help="copy a trial's trained weights, resolved config and metrics to a folder")
    _study_args(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--best", action="store_true", help="the best completed trial by the first objective")
    which.add_argument("--trial", type=_count(0), help="trial number (as `ablate status` lists them)")
    p.add_argument("--to", help="destination folder (default <study folder>/export/trial-<n>, or <name>.K-trial-<n>)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("cache", help="show the stage cache's size, or prune it")
    p.add_argument("--dir", help="cache folder (default $ABLATE_CACHE or ~/.cache/ablate)")
    p.add_argument("--prune", action="store_true", help="delete entries (all, or of --stage)")
    p.add_argument("--prune-corrupt", action="store_true", help="delete only corrupt entries")
    p.add_argument("--prune-outdated", action="store_true", help="delete only entries made by code that changed")
    p.add_argument("--stage", help="with --prune: only this stage (model, cams, ...)")
    p.set_defaults(func=cmd_cache)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ablate._config import ConfigError
    from ablate._plugins import PluginError
    from ablate._registry import RegistryError

    parser = build_parser()
    args = parser.parse_args(argv)
    # the `ablate` script has its own bin folder on sys.path where `python -m ablate` has the current folder: plugin
    # modules in the folder the user works in import the same either way (worker children run `python -m ablate`)
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    if args.command is None:  # plain `ablate`: what it can do
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("ablate: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `ablate status ... | head` closed the pipe: stop quietly, as a shell tool does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush must not fail again
        return EXIT_BROKEN_PIPE
    except (ConfigError, RegistryError, PluginError, ValueError, OSError) as exc:
        print(f"ablate: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # anything unexpected: one line, the traceback in a file
        if _diverged(exc):
            print(f"ablate: trial failed: {exc}", file=sys.stderr)
            return EXIT_FAILED
        print(_failure_line("failed", exc), file=sys.stderr)
        return EXIT_FAILED


def _diverged(exc: Exception) -> bool:
    """Whether ``exc`` is a training's divergence (only a command that trained can raise one, so the training
    module, which imports torch, is looked up rather than imported)."""
    train = sys.modules.get("ablate._train")
    return train is not None and isinstance(exc, train.Diverged)


def _failure_line(what: str, exc: BaseException) -> str:
    """``ablate: <what>: <type>: <first line> (traceback: <file>)``, the traceback written to a named file (call it
    while ``exc`` is handled)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"ablate: {what}: {type(exc).__name__}: {first} (traceback: {_write_traceback()})"


def _write_traceback() -> Path:
    import tempfile
    import traceback

    handle, name = tempfile.mkstemp(prefix="ablate-error-", suffix=".log")
    with open(handle, "w") as log:
        log.write(traceback.format_exc())
    return Path(name)


if __name__ == "__main__":
    sys.exit(main())
