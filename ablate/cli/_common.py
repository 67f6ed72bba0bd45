"""What the commands share: exit codes, one-line failures, reading a study file and its stored trials."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell tool killed by a closed pipe returns


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


def _diverged(exc: Exception) -> bool:
    """Whether ``exc`` is a training's divergence (only a command that trained can raise one, so the training
    module, which imports torch, is looked up rather than imported)."""
    loop = sys.modules.get("ablate.pipeline._loop")
    return loop is not None and isinstance(exc, loop.Diverged)


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


def _check_output(option: str, path: str) -> None:
    """Refuse an output file whose folder does not exist, naming the option (before any work is done)."""
    if not Path(path).parent.is_dir():
        raise ValueError(f"{option} {path}: no folder {Path(path).parent}")
