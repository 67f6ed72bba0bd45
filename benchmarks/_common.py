"""Shared pieces of the benchmark scripts: arguments, environment record, interleaved timing, caches, output.

Every benchmark compares variants measured in the same process run, interleaved (the order is reversed
on every other repeat) and summarised by medians, so its ratios survive a machine that is busy with
other work; its absolute seconds do not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

import ablate
from ablate.config._resolve import resolve
from ablate.pipeline._device import cpu_model
from ablate.pipeline._loop import amp_dtype
from ablate.pipeline._trial import load_data

T = TypeVar("T")

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = ("tiny", "default")
# Torch threads per size (None: torch's default, every core). Tiny runs are smoke tests: one thread keeps
# them from spinning OpenMP threads against other work on the machine (10-40x slower steps seen on 2 cores).
THREADS: dict[str, int | None] = {"tiny": 1, "default": None}


def parse_args(
    description: str,
    repeats: dict[str, int],
    argv: Sequence[str] | None = None,
    options: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """``--size``, ``--out`` and ``--repeats`` (default per size), and what ``options`` adds to the parser;
    also records the environment at start."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--size", choices=SIZES, default="default", help="tiny: a smoke test of the script")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"folder of the JSON result (default {RESULTS})")
    parser.add_argument("--repeats", type=int, help=f"measurements per variant (default {repeats})")
    parser.add_argument("--threads", type=int, help=f"torch threads (default {THREADS}; None: every core)")
    if options is not None:
        options(parser)
    args = parser.parse_args(argv)
    args.repeats = args.repeats or repeats[args.size]
    args.threads = args.threads or THREADS[args.size]
    if args.threads:
        torch.set_num_threads(args.threads)
    args.environment = environment()
    return args


def device_name() -> str:
    """The harness's ``device`` value for this machine: CUDA (where the trainer uses AMP) when present."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def environment() -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    return {
        "device": device_name(),
        "device_model": torch.cuda.get_device_name(0) if cuda else cpu_model(),
        # the trainer's autocast dtype: bfloat16 on GPUs that support it, float16 (with a GradScaler) on older ones
        "amp": str(amp_dtype(torch.device("cuda"))).removeprefix("torch.") if cuda else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),  # context for the absolute seconds: other work on the machine
    }


def sync() -> None:
    """Wait for queued CUDA work, so a clock read after it covers the work."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """Seconds ``fn()`` took (CUDA work included) and its result."""
    sync()
    start = time.perf_counter()
    result = fn()
    sync()
    return time.perf_counter() - start, result


def interleave(variants: dict[str, Callable[[], T]], repeats: int) -> dict[str, list[T]]:
    """Each variant's results over ``repeats`` rounds, run in ABBA order so load drifts hit all variants alike."""
    names = list(variants)
    results: dict[str, list[T]] = {name: [] for name in names}
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else reversed(names):
            results[name].append(variants[name]())
    return results


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """Median of per-round ratios: each pair was measured back to back, under the same load."""
    return median([a / b for a, b in zip(numerators, denominators, strict=True)])


def warm_data(configs: Sequence[dict[str, Any]], root: Path, overrides: dict[str, Any] | None = None) -> Path:
    """Generate the datasets of ``configs`` (with dotted ``overrides``) once into ``root``; returns the folder
    to share (``root/datasets``)."""
    ablate.load_components()
    cache = ablate.StageCache(root)
    for config in configs:
        load_data(resolve(config, overrides)["data"], cache)
    return root / "datasets"


def fresh_cache(parent: Path, datasets: Path) -> ablate.StageCache:
    """An empty stage cache sharing the warm ``datasets``: everything but data generation is rebuilt."""
    root = Path(tempfile.mkdtemp(prefix="cache-", dir=parent))
    (root / "datasets").symlink_to(datasets.resolve(), target_is_directory=True)
    return ablate.StageCache(root)


def thread_env(args: argparse.Namespace) -> dict[str, str]:
    """The environment for ``ablate`` subprocesses: ``--threads`` (if given) through OMP_NUM_THREADS."""
    return {**os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {})}


def write_result(name: str, args: argparse.Namespace, payload: dict[str, Any]) -> Path:
    """``<out>/<name>-<size>.json`` with the environment at start and the load average at the end."""
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{name}-{args.size}.json"
    record = {
        "benchmark": name,
        "size": args.size,
        "repeats": args.repeats,
        "environment": {**args.environment, "load_average_end": os.getloadavg()},
        **payload,
    }
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {path}")
    return path


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return "-" if value is None else str(value)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A Markdown table (floats to 3 significant digits)."""
    cells = [list(headers), *([_cell(v) for v in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "-|-".join("-" * w for w in widths))
    print("\n".join(f"| {line} |" for line in lines))
