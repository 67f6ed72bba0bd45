"""Where a trial runs: the configured device, CUDA (with AMP in training) when ``auto`` finds one, and which GPU
each ``--workers`` process sees."""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

import torch

from ablate.config._resolve import ConfigError


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: '{name}' requested but CUDA is not available on this machine")
    return torch.device(name)


@functools.cache
def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.machine())


def describe_device(device: torch.device) -> str:
    """The device as a trial records it: the GPU's name, or on a CPU its model and torch's thread count, since
    another CPU or thread count rounds differently and can move a from-scratch network's numbers as much as a seed."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({cpu_model()}, {torch.get_num_threads()} threads)"
    return device.type


def worker_gpus(workers: int) -> list[str | None]:
    """The ``CUDA_VISIBLE_DEVICES`` of each of ``workers`` processes: the GPUs in turn, one per worker.

    On a machine with several GPUs, worker ``i`` sees GPU ``i mod count`` only (so ``device: auto`` and
    ``cuda`` put its trials there); the GPUs are those of an existing ``CUDA_VISIBLE_DEVICES`` when it is set.
    With one GPU or none, every worker keeps the environment as it is (None).
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = [g.strip() for g in visible.split(",") if g.strip()] if visible else None
    if gpus is None:
        gpus = [str(i) for i in range(torch.cuda.device_count())]
    if len(gpus) < 2:
        return [None] * workers
    return [gpus[i % len(gpus)] for i in range(workers)]
