"""The ``ablate`` parser and its entry point: every expected failure ends with one line and an exit code."""

from __future__ import annotations

import argparse
import os
import sys

from ablate.cli._common import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    _count,
    _diverged,
    _failure_line,
)
from ablate.cli._read import cmd_compare, cmd_export, cmd_report, cmd_status
from ablate.cli._run import cmd_run
from ablate.cli._trial import cmd_cache, cmd_list, cmd_trial, cmd_validate


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
    from ablate._plugins import PluginError
    from ablate._registry import RegistryError
    from ablate.config._resolve import ConfigError

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
