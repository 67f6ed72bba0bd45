"""Per-image work spread over the machine's cores (post-processors such as CRF call it through their context)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import TypeVar

import numpy as np
import torch

from ablate._plugins import BUILT_IN

T = TypeVar("T")


def _apply(fn: Callable[..., T], args: tuple) -> T:
    return fn(*args)


_pools: dict[int, ProcessPoolExecutor] = {}


def image_pool(workers: int) -> ProcessPoolExecutor:
    """A process pool kept for the life of this process (its start-up is paid once, not per step).

    Workers come from a fork server that has imported ablate but never run torch: forking a process
    whose OpenMP threads already ran deadlocks any torch call in the child.
    """
    if workers not in _pools:
        context = get_context("forkserver")
        context.set_forkserver_preload(["ablate", BUILT_IN])
        _pools[workers] = ProcessPoolExecutor(
            workers, mp_context=context, initializer=torch.set_num_threads, initargs=(1,)
        )
    return _pools[workers]


def map_images(fn: Callable[..., T], *arrays: np.ndarray, workers: int) -> list[T]:
    """``[fn(a[i], b[i], ...) for i]``, spread over ``workers`` processes when there is enough work."""
    jobs = list(zip(*arrays, strict=True))
    workers = min(workers, len(jobs))
    if workers <= 1 or len(jobs) < 8:
        return [fn(*job) for job in jobs]
    chunks = max(1, len(jobs) // (4 * workers))
    try:
        return list(image_pool(workers).map(_apply, [fn] * len(jobs), jobs, chunksize=chunks))
    except BrokenProcessPool:  # a worker was killed (e.g. out of memory): start a fresh pool once
        _pools.pop(workers).shutdown(wait=False)
        return list(image_pool(workers).map(_apply, [fn] * len(jobs), jobs, chunksize=chunks))
