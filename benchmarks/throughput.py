"""Throughput: images per second of CAM generation and of every registered post-processor, per image size.

At each size a trial context (:class:`ablate.pipeline._trial.TrialRun`, the object post-processors get in a
trial) holds synthetic data and the default student trained for one epoch; post-processors run with
their default parameters on its test CAMs. Measured per step:

- ``cold_s``: the first call on a fresh instance: model building and the CAMs, features or trained
  refiners it asks the context for, which the stage cache then keeps (the first trial of a model).
- ``images_per_s``: warm calls (those artifacts cached: every later trial on the same model).
- ``x_cams``: warm seconds per image / CAM generation seconds per image, per round (the ratio to compare
  across machines). Steps in :data:`CAP` run on fewer images per call than the CAMs.
- memory, in a separate warm call: ``tracemalloc_peak_mb`` (Python and numpy allocations; not torch's
  CPU allocator), ``maxrss_mb`` (the process's resident high-water mark after the call: it only grows,
  so it shows the largest step so far; image-pool workers not included) and ``cuda_peak_mb``.
"""

from __future__ import annotations

import gc
import resource
import tempfile
import tracemalloc
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from _common import device_name, interleave, median, paired_ratio, parse_args, print_table, timed, write_result

from ablate import POSTPROCESSORS, PostState, StageCache, TrialConfig, load_components, validate
from ablate.pipeline._cams import compute_cams
from ablate.pipeline._trial import TrialRun

SIZES: dict[str, dict[int, int]] = {"tiny": {64: 4}, "default": {64: 32, 224: 16, 512: 8}}  # image px -> images
# Too slow for a smoke test on a CPU (a ViT-B image encoder per image); measured at --size default.
SKIP_TINY = {"clip": "ViT-B-16 per image", "sam": "SAM ViT-B per image"}
# Images per call for steps whose cost per image is large and the same warm or cold (SAM ViT-B encodes every
# image at 1024 px: about 25 s per image on 2 CPU cores).
CAP = {"sam": 1}
# Parameters other than the defaults: the paper's blocks (-5, -4, -2, -1 of 12) do not all exist in the default
# 4-block student; fuse its last three blocks, as studies/postprocess.yaml does.
PARAMS: dict[str, dict[str, Any]] = {"cam_fusion": {"layers": ["blocks.-3", "blocks.-2", "blocks.-1"]}}


def context(size: int, images: int, threads: int | None, root: Path) -> TrialRun:
    """A trial context on ``images`` train and test images of ``size`` px, its network trained for one epoch."""
    config = validate(
        {
            "paradigm": {"name": "single", "network": "student"},
            "data": {"name": "synthetic-smoke", "image_size": size, "n_train": images, "n_val": 0, "n_test": images},
            "train": {"epochs": 1, "batch_size": images},
            "device": device_name(),
            "threads": threads,
        }
    )
    run = TrialRun(TrialConfig.from_dict(config), StageCache(root / f"cache-{size}"), progress=False)
    run.maps.networks()  # now, outside the timings
    return run


def seconds(fn: Callable[[], Any]) -> float:
    return timed(fn)[0]


def memory(fn: Callable[[], Any]) -> dict[str, float | None]:
    """Peak memory of one call of ``fn`` (see the module docstring)."""
    gc.collect()
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "tracemalloc_peak_mb": peak / 2**20,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
        "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
    }


def measure(run: TrialRun, names: list[str], repeats: int) -> dict[str, dict[str, Any]]:
    """Cold time, warm times and memory of CAM generation and of each post-processor ``names``."""
    images = run.data.test.images
    calls: dict[str, Callable[[], Any]] = {
        "cams": partial(compute_cams, run.maps.networks(), run.config.cam, images, run.device)
    }
    counts = {"cams": len(images)}
    cold = {"cams": seconds(calls["cams"])}  # the first CAM pass also pays lazy initialisation
    cams = calls["cams"]()[0]
    for name in names:
        counts[name] = min(CAP.get(name, len(images)), len(images))
        state = PostState(images[: counts[name]], cams[: counts[name]])
        calls[name] = partial(POSTPROCESSORS.create(name, **PARAMS.get(name, {})), state, run.chain)
        cold[name] = seconds(calls[name])
    warm = interleave({name: partial(seconds, call) for name, call in calls.items()}, repeats)
    per_image = {name: [s / counts[name] for s in times] for name, times in warm.items()}
    return {
        name: {
            "images": counts[name],
            "cold_s": cold[name],
            "warm_s": warm[name],
            "images_per_s": 1 / median(per_image[name]),
            "x_cams": paired_ratio(per_image[name], per_image["cams"]),
            **memory(call),
        }
        for name, call in calls.items()
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args("Images per second of CAM generation and post-processors.", {"tiny": 1, "default": 3}, argv)
    load_components()
    skipped = SKIP_TINY if args.size == "tiny" else {}
    names = [name for name in POSTPROCESSORS.names() if name not in skipped]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ablate-throughput-") as tmp:
        for size, images in SIZES[args.size].items():
            print(f"{size} px, {images} images ...", flush=True)  # a default run takes minutes per size
            results[str(size)] = {
                "images": images,
                "steps": measure(context(size, images, args.threads, Path(tmp)), names, args.repeats),
            }
    payload = {"network": "student (test_vit), 1 epoch", "skipped": skipped, "results": results}
    write_result("throughput", args, payload)
    rows = [
        [size, name, r["cold_s"], r["images_per_s"], r["x_cams"], r["tracemalloc_peak_mb"], r["maxrss_mb"]]
        for size, entry in results.items()
        for name, r in entry["steps"].items()
    ]
    print_table(["px", "step", "cold s", "warm img/s", "x CAM time", "tracemalloc MB", "maxrss MB"], rows)
    for name, why in skipped.items():
        print(f"skipped {name} at --size tiny ({why}); --size default includes it")
    return results


if __name__ == "__main__":
    main()
