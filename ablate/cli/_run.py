"""``ablate run``: queue a study's pairs, work through them in this process or ``--workers`` children, finish
with the report and one summary line."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from ablate.cli._common import EXIT_FAILED, EXIT_INTERRUPTED, _study, _warn_changed_code

PARENT_PID = "ABLATE_PARENT_PID"  # the --workers parent's pid, in its children's environment
PARENT_POLL = 1.0  # seconds between a worker's checks that its parent still runs


def cmd_run(args: argparse.Namespace) -> int:
    import signal

    from ablate.study import interrupt, interrupt_taken

    # a cluster's time limit or preemption (SLURM, Kubernetes) and a plain `kill` send SIGTERM: stop as Ctrl-C does,
    # marking the running trial for the next run, instead of leaving it to the stale-worker timeout
    # Ctrl-C too, unless ignored (a run started in the background ignores SIGINT)
    caught = [signal.SIGTERM, signal.SIGALRM]
    caught += [signal.SIGINT] if signal.getsignal(signal.SIGINT) is signal.default_int_handler else []
    previous = {number: signal.signal(number, interrupt) for number in caught}
    try:
        return _run(args)
    finally:
        interrupt_taken()
        for number, handler in previous.items():
            signal.signal(number, handler)


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

    from ablate.study import interrupt_taken

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
    from ablate.pipeline._device import worker_gpus

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
        interrupt_taken()
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
