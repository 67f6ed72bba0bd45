"""Workers: who holds a RUNNING trial, whether that worker still lives, and its heartbeat.

A worker is ``host:pid``. A trial left RUNNING by a killed worker (dead pid on this host, or no heartbeat for
:data:`STALE_AFTER` seconds) is stale: the next ``ablate run`` fails it and queues it again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator

import optuna
from optuna.trial import FrozenTrial

from ablate.storage import trial_id

REDELIVER_AFTER = 0.5  # seconds after which an interrupt not yet taken is raised again
HEARTBEAT_EVERY = 15.0
STALE_AFTER = 120.0
#: This process, as the ``worker`` attribute of the trials it claims.
WORKER = f"{socket.gethostname()}:{os.getpid()}"


def _live(worker: str | None) -> bool:
    """False only when ``worker`` ran on this host and its process is gone."""
    if not worker:
        return True
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_reason(trial: FrozenTrial) -> str | None:
    """Why a RUNNING ``trial`` has no live worker (its process is gone from this host, or its heartbeat stopped), or
    None while it may still run. The next ``ablate run`` fails such a trial and queues it again."""
    worker = trial.user_attrs.get("worker")
    now = time.time()
    beat = trial.user_attrs.get("heartbeat", trial.datetime_start.timestamp() if trial.datetime_start else now)
    if not _live(worker):
        return f"worker {worker} stopped"
    if now - beat >= STALE_AFTER:
        return f"no heartbeat from worker {worker} for {now - beat:.0f} s"
    return None


@contextlib.contextmanager
def heartbeat(storage: optuna.storages.BaseStorage, trial: optuna.Trial) -> Iterator[None]:
    """Write ``trial``'s heartbeat every :data:`HEARTBEAT_EVERY` seconds while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while True:
            with contextlib.suppress(Exception):  # a missed beat only delays stale detection
                storage.set_trial_user_attr(trial_id(trial), "heartbeat", time.time())
            if stop.wait(HEARTBEAT_EVERY):
                return

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()


def interrupt(signum: int, frame: object) -> None:
    """A signal handler that stops the run as Ctrl-C does (``KeyboardInterrupt``).

    Python ignores an exception raised while it runs a weakref callback or ``__del__``, which torch runs all through
    training: such an interrupt was lost and the run went on. It is raised again (SIGALRM, which this handler must
    also be installed for) every :data:`REDELIVER_AFTER` seconds until :func:`interrupt_taken`.
    """
    signal.setitimer(signal.ITIMER_REAL, REDELIVER_AFTER)
    raise KeyboardInterrupt


def interrupt_taken() -> None:
    """Stop the redelivery of an :func:`interrupt`: its ``KeyboardInterrupt`` has been caught. A second SIGTERM is
    ignored from here on, so the run can mark its trial: a SLURM preemption signals every process of a job, and its
    batch script passes the signal on as well."""
    signal.setitimer(signal.ITIMER_REAL, 0)
    if signal.getsignal(signal.SIGTERM) is interrupt:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
