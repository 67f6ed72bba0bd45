"""Harness overhead: one trial through ablate vs a bare PyTorch loop training the same network.

Both train the default student (paradigm ``single``) from the same seed on the same arrays, for the
same steps, batch size, threads and device (float16 autocast + GradScaler on CUDA, as the trainer
does), with augmentation off and on. The harness trial starts from an empty stage cache (only the
data is warm), so it trains. Ratios:

- ``train_ratio``: the trial's ``train`` stage (network build, loop, weight file write and checksums,
  reload) / the bare loop including its network build. Target: at most 1.05.
- ``loop_ratio``: ``Trainer.fit`` alone / the bare loop alone (optimizer + steps).

The breakdown shows where the whole trial's time goes. ``storage`` is measured apart: this trial's
stage-cache entries (model weights, CAMs) written to and read back from a scratch stage cache, as
the trial does between and inside its stage timers (file bytes, checksums, meta, rename; not the
torch/numpy serialisation). ``other`` is the trial's time outside every stage timer.
"""

from __future__ import annotations

import math
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from _common import (
    device_name,
    fresh_cache,
    interleave,
    median,
    paired_ratio,
    parse_args,
    print_table,
    sync,
    timed,
    warm_data,
    write_result,
)

from ablate import StageCache, TrialConfig, validate
from ablate.pipeline._data import Dataset
from ablate.pipeline._models import build_network
from ablate.pipeline._trial import TrialRun, load_data

SIZES: dict[str, dict[str, Any]] = {
    "tiny": {
        "data": {"name": "synthetic-smoke", "image_size": 32, "n_train": 16, "n_val": 4, "n_test": 4},
        "train": {"epochs": 1, "batch_size": 8},
    },
    "default": {"data": {"name": "synthetic-smoke"}, "train": {"epochs": 3}},
}
STAGES = ("validate", "data", "train", "cams", "postprocess", "metrics", "other")
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def bare(config: dict[str, Any], data: Dataset, device: torch.device) -> dict[str, float]:
    """What a researcher would write without the harness: seconds of build + loop, and of the loop alone."""
    train, role = config["train"], config["paradigm"]["network"]
    cuda = device.type == "cuda"
    sync()
    start = time.perf_counter()
    torch.manual_seed(config["seed"] * 1000 + ("teacher", "student").index(role))
    network = build_network(TrialConfig.from_dict(config).network(role)).to(device).train()
    built = time.perf_counter()
    optimizer = torch.optim.AdamW(network.parameters(), lr=train["lr"], weight_decay=train["weight_decay"])
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    generator = torch.Generator().manual_seed(config["seed"])
    mean, std = MEAN.to(device), STD.to(device)
    images, labels, n = data.train.images, data.train.labels, len(data.train)
    for _ in range(train["epochs"]):
        order = torch.randperm(n, generator=generator).numpy()
        for first in range(0, n, train["batch_size"]):
            index = order[first : first + train["batch_size"]]
            x = (torch.from_numpy(images[index]).to(device).permute(0, 3, 1, 2).float() / 255 - mean) / std
            if train["augment"]:  # random flip and brightness/contrast jitter, as the trainer does
                b = len(index)
                flip = (torch.rand(b, generator=generator) < 0.5).to(device).view(b, 1, 1, 1)
                scale = (1 + 0.2 * (torch.rand(b, 1, 1, 1, generator=generator) - 0.5)).to(device)
                shift = (0.2 * (torch.rand(b, 1, 1, 1, generator=generator) - 0.5)).to(device)
                x = torch.where(flip, x.flip(-1), x) * scale + shift
            y = torch.from_numpy(labels[index]).to(device)
            with torch.autocast(device.type, dtype=torch.float16, enabled=cuda):
                loss = F.cross_entropy(network(x).logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        if not math.isfinite(loss.item()):  # one host sync per epoch, as a user would log the loss
            raise RuntimeError("bare loop diverged")
    sync()
    end = time.perf_counter()
    return {"bare_total": end - start, "bare_loop": end - built}


def harness(config: dict[str, Any], parent: Path, datasets: Path) -> dict[str, float]:
    """One trial as :func:`ablate.run_trial` runs it, with ``Trainer.fit`` timed on this trial's trainer."""
    cache = fresh_cache(parent, datasets)
    start = time.perf_counter()
    resolved = validate(config)
    validated = time.perf_counter()
    run = TrialRun(TrialConfig.from_dict(resolved), cache, progress=False)
    loops: list[float] = []
    fit = run.trainer.fit

    def timed_fit(*args: Any, **kwargs: Any) -> None:
        loops.append(timed(lambda: fit(*args, **kwargs))[0])

    run.trainer.fit = timed_fit  # this instance only: the loop's own time inside the "train" stage
    result = run.run()
    total = time.perf_counter() - start
    times = {"validate": validated - start, **result.timings, "harness_total": total, "harness_loop": sum(loops)}
    times["other"] = total - sum(times[s] for s in STAGES if s != "other")
    times.update(storage(cache, StageCache(cache.root.parent / f"{cache.root.name}-scratch")))
    return times


def _write(files: dict[str, bytes], folder: Path) -> None:
    for name, content in files.items():
        (folder / name).write_bytes(content)


def storage(cache: StageCache, scratch: StageCache) -> dict[str, float]:
    """Seconds to write this trial's model and CAM entries into ``scratch``, and to look them up and read them."""
    write = read = 0.0
    for stage, entry, _, _ in cache.entries():
        if stage not in ("model", "cams"):
            continue
        files = {p.name: p.read_bytes() for p in entry.iterdir() if p.name != "meta.json"}
        start = time.perf_counter()
        scratch.get_or_build(stage, entry.name, partial(_write, files))
        written = time.perf_counter()
        for path in scratch.lookup(stage, entry.name).iterdir():  # lookup verifies checksums, as a cache hit does
            path.read_bytes()
        write, read = write + written - start, read + time.perf_counter() - written
    return {"storage_write": write, "storage_read": read}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args("Harness training time vs a bare PyTorch loop.", {"tiny": 1, "default": 7}, argv)
    threads = torch.get_num_threads()  # --threads, or torch's default
    base = {
        **SIZES[args.size],
        "paradigm": {"name": "single", "network": "student"},
        "device": device_name(),
        "threads": threads,  # the harness sets it; the bare loop runs in this process with the same value
    }
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ablate-overhead-") as tmp:
        parent = Path(tmp)
        datasets = warm_data([base], parent / "warm")
        for augment in (False, True):
            config = validate(base, {"train.augment": augment})
            data = load_data(config["data"], StageCache(datasets.parent))
            variants = {
                "harness": partial(harness, config, parent, datasets),
                "bare": partial(bare, config, data, torch.device(config["device"])),
            }
            interleave(variants, 1)  # warm-up round, discarded: first-call costs (allocator, lazy inits)
            runs = interleave(variants, args.repeats)
            merged = {k: [r[k] for r in runs["harness"]] for k in runs["harness"][0]}
            merged.update({k: [r[k] for r in runs["bare"]] for k in runs["bare"][0]})
            results["augment_on" if augment else "augment_off"] = {
                "seconds": merged,
                "train_ratio": paired_ratio(merged["train"], merged["bare_total"]),
                "loop_ratio": paired_ratio(merged["harness_loop"], merged["bare_loop"]),
                "breakdown_median_s": {k: median(merged[k]) for k in (*STAGES, "storage_write", "storage_read")},
            }
    steps = config["train"]["epochs"] * math.ceil(len(data.train) / config["train"]["batch_size"])
    setting = {
        "network": "student (paradigm single)",
        "backbone": config["student"]["backbone"],
        "data": config["data"],
        "train": {k: v for k, v in config["train"].items() if k != "augment"},
        "steps": steps,
        "threads": threads,
    }
    write_result("overhead", args, {"setting": setting, "results": results, "target_train_ratio": 1.05})
    print(f"{steps} steps of batch {config['train']['batch_size']}, {threads} threads, device {config['device']}")
    print_table(
        ["augment", "harness train s", "bare s", "train ratio", "loop ratio"],
        [
            [name, median(r["seconds"]["train"]), median(r["seconds"]["bare_total"]), r["train_ratio"], r["loop_ratio"]]
            for name, r in results.items()
        ],
    )
    breakdown = [r["breakdown_median_s"] for r in results.values()]
    print_table(["trial stage (median s)", *results], [[k, *(b[k] for b in breakdown)] for k in breakdown[0]])
    return results


if __name__ == "__main__":
    main()
