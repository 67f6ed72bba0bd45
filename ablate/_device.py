"""Where a trial runs: the configured device, CUDA (with AMP in training) when ``auto`` finds one, and which GPU
each ``--workers`` process sees."""

from __future__ import annotations

import os

import torch

from ablate._config import ConfigError


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: '{name}' requested but CUDA is not available on this machine")
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    return f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else device.type


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
