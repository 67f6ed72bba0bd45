"""Paper-sized training near the device's limit: one teacher-student step of the paper's networks at 512 px.

The paper's setting, built by the harness as a trial builds it: a frozen ResNet-50 + PCM teacher (output stride
16: a 32 x 32 class map at 512 px), ViT-S/16 and ViT-B/16 students (1024 patch tokens) with the CAM head, global
cosine transfer through the 1x1 conv projection, lambda 1, on ``synthetic-smoke`` images at 512 px. One step is what
``Trainer.fit`` does per batch: the batch to the device (``to_tensor``), the teacher's class map without gradients,
the student's forward and backward under the trainer's autocast, the AdamW step.

Per student and batch size (8 and, on CUDA, the largest that fits: doubled from 8 until memory runs out), per
variant:

- ``harness``: the trainer's choices on this device (CUDA: bfloat16 autocast where the GPU supports it, no loss
  scaling; convolutions channels-last; fused AdamW. CPU: float32);
- ``fp16``: the trainer before those choices (float16 autocast + GradScaler, contiguous layout, per-tensor AdamW);
  CUDA only;
- ``compile``: ``harness`` with the student compiled (``train.compile: true``); its compilation is timed apart.

Measured: images/s (median of the timed steps after warm-up), peak memory (CUDA: ``max_memory_allocated``; CPU: the
process's resident high-water mark), the FLOPs of one step counted by ``torch.utils.flop_counter.FlopCounterMode``
(teacher forward, student forward and backward), and model FLOPs utilisation: FLOPs per second over the device's
dense peak. The peak is the vendor's dense bfloat16/float16 tensor-core figure (printed with its source) for known
GPUs; elsewhere the rate of a large float32 matrix product measured in this run, so the CPU's MFU reads "of what
this CPU's matmul reaches". ``torch.profiler`` then splits one ``harness`` step of the largest batch by operator
(self device time): where the time that is not matrix products goes. Goal (issue 16): MFU >= 40% for the step on a GPU.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch
from _common import parse_args, print_table, sync, timed, write_result
from torch.utils.flop_counter import FlopCounterMode

from ablate import StageCache, TrialConfig, classification_loss, load_components
from ablate.config._resolve import resolve
from ablate.pipeline._loop import adamw, amp_dtype, grad_scaler, optimizer_step, place, to_tensor
from ablate.pipeline._models import build_network
from ablate.pipeline._transfer import TransferLoss
from ablate.pipeline._trial import load_data

# Dense (no sparsity) bfloat16/float16 tensor-core peaks, FLOP/s, by a substring of torch.cuda.get_device_name().
GPU_PEAKS: dict[str, tuple[float, str]] = {
    "H200": (989.4e12, "NVIDIA H200 datasheet: BF16 Tensor Core 1,979 TFLOPS with sparsity, half without"),
    "H100 PCIe": (756.0e12, "NVIDIA H100 datasheet (PCIe): BF16 1,513 TFLOPS with sparsity, half without"),
    "H100": (989.4e12, "NVIDIA H100 datasheet (SXM): BF16 1,979 TFLOPS with sparsity, half without"),
    "A100": (312.0e12, "NVIDIA A100 datasheet: BF16 Tensor Core 312 TFLOPS dense"),
    "L40S": (362.0e12, "NVIDIA L40S datasheet: BF16 733 TFLOPS with sparsity, half without"),
    "V100": (125.0e12, "NVIDIA V100 datasheet (SXM2): FP16 Tensor Core 125 TFLOPS"),
}
STUDENTS = {"tiny": ("test_vit",), "default": ("vit_small_patch16_224", "vit_base_patch16_224")}
SETTING = {
    "tiny": {"teacher": "test_resnet", "image_size": 64, "batch": 2},
    "default": {"teacher": "resnet50", "image_size": 512, "batch": 8},
}
WARMUP_STEPS = 2
MAX_BATCH = 512


def trial_config(teacher: str, student: str, image_size: int) -> TrialConfig:
    """The trial config of the paper's setting (teacher-student, global cosine, conv projection, lambda 1)."""
    data = {"name": "synthetic-smoke", "image_size": image_size, "n_train": 16, "n_val": 0, "n_test": 4}
    config = resolve({"data": data})
    # whole backbone specs: the defaults' tiny-model arguments (depth, patch size, conv stem) must not merge in
    config["teacher"]["backbone"] = {"name": "timm", "model": teacher, "model_args": {"output_stride": 16}}
    student_args = {"img_size": image_size, **({"patch_size": 8} if student == "test_vit" else {})}
    config["student"]["backbone"] = {"name": "timm", "model": student, "model_args": student_args}
    return TrialConfig.from_dict(config)


class Step:
    """One teacher-student training step of ``config`` on ``device`` in one variant; ``images`` uint8 NHWC."""

    def __init__(self, config: TrialConfig, images: Any, labels: Any, device: torch.device, variant: str) -> None:
        cuda = device.type == "cuda"
        legacy = variant == "fp16"
        self.device, self.images, self.labels = device, images, labels
        self.dtype = torch.float16 if legacy else amp_dtype(device)
        torch.manual_seed(0)
        put = (lambda m: m.to(device)) if legacy else (lambda m: place(m, device))
        self.teacher = put(build_network(config.network("teacher"))).eval().requires_grad_(False)
        self.student = put(build_network(config.network("student"))).train()
        self.transfer = TransferLoss(config.transfer, self.student.aligned_channels, self.teacher.aligned_channels).to(
            device
        )
        params = [*self.student.parameters(), *self.transfer.parameters()]
        if legacy:
            self.optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05)
            self.scaler = torch.amp.GradScaler("cuda", enabled=cuda)
        else:
            self.optimizer = adamw(params, device, 1e-4, 0.05)
            self.scaler = grad_scaler(device)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda _: 1.0)
        self.channels_last = cuda and not legacy
        self.compile_s = 0.0
        if variant == "compile":
            self.student.compile()
            self.compile_s = timed(self)[0]  # the first call compiles forward and backward

    def __call__(self) -> None:
        x = to_tensor(self.images, self.device)
        if not self.channels_last:
            x = x.contiguous()
        y = self.labels.to(self.device)
        with torch.autocast("cuda", dtype=self.dtype or torch.float16, enabled=self.dtype is not None):
            with torch.no_grad():
                target = self.teacher(x).aligned(self.teacher.align)
            out = self.student(x)
            loss = classification_loss(out, y) + self.transfer(out.aligned(self.student.align), target)
        optimizer_step(self.optimizer, self.scaler, self.scheduler, loss)


def count_flops(step: Step) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux; the process's high-water mark


def device_peak(device: torch.device) -> tuple[float, str]:
    """The FLOP/s the MFU is taken against, and where the figure comes from."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, (peak, source) in GPU_PEAKS.items():
            if key in name:
                return peak, source
        return matmul_rate(device, torch.bfloat16), f"{name}: no datasheet figure here; a measured bf16 matmul rate"
    return matmul_rate(device, torch.float32), "no vendor figure for this CPU: the float32 matmul rate measured now"


def matmul_rate(device: torch.device, dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b  # warm-up
    seconds = min(timed(lambda: a @ b)[0] for _ in range(repeats))
    return 2 * n**3 / seconds


def fits(config: TrialConfig, data: Any, device: torch.device, batch: int) -> bool:
    """Whether one ``harness`` step of ``batch`` images fits in the device's memory."""
    images, labels = batch_of(data, batch)
    try:
        Step(config, images, labels, device, "harness")()
        return True
    except torch.OutOfMemoryError:
        return False
    finally:
        torch.cuda.empty_cache()


def largest_batch(config: TrialConfig, data: Any, device: torch.device, start: int) -> int:
    batch = start
    while batch * 2 <= MAX_BATCH and fits(config, data, device, batch * 2):
        batch *= 2
    return batch


def batch_of(data: Any, batch: int) -> tuple[Any, torch.Tensor]:
    """``batch`` train images (the generated ones repeated as needed) and their labels."""
    index = [i % len(data.train) for i in range(batch)]
    return data.train.images[index], torch.from_numpy(data.train.labels[index])


def measure(config: TrialConfig, data: Any, device: torch.device, batch: int, variant: str, steps: int) -> dict:
    images, labels = batch_of(data, batch)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    step = Step(config, images, labels, device, variant)
    for _ in range(WARMUP_STEPS):
        step()
    seconds = [timed(step)[0] for _ in range(steps)]
    flops = count_flops(step)
    median = statistics.median(seconds)
    return {
        "step_s": median,
        "images_per_s": batch / median,
        "flops_per_step": flops,
        "flops_per_s": flops / median,
        "peak_memory_mb": peak_memory_mb(device),
        "compile_s": step.compile_s,
        "amp": str(step.dtype).removeprefix("torch.") if step.dtype is not None else None,
    }


def profile(config: TrialConfig, data: Any, device: torch.device, batch: int, top: int = 12) -> list[dict]:
    """Operators of one ``harness`` step by self device time (CPU time on a CPU), the largest first."""
    images, labels = batch_of(data, batch)
    step = Step(config, images, labels, device, "harness")
    step()
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        step()
        sync()
    events = prof.key_averages()
    cuda = device.type == "cuda"
    self_us = [(e.key, e.self_device_time_total if cuda else e.self_cpu_time_total) for e in events]
    total = sum(us for _, us in self_us) or 1.0
    self_us.sort(key=lambda item: -item[1])
    return [{"op": key, "self_ms": us / 1000, "share": us / total} for key, us in self_us[:top]]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    def options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--variants", help="comma-separated (default: harness,fp16,compile on CUDA, harness on CPU)"
        )

    args = parse_args(
        "One teacher-student step of the paper's networks at 512 px.", {"tiny": 1, "default": 5}, argv, options
    )
    load_components()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.type == "cuda"
    variants = (args.variants or ("harness,fp16,compile" if cuda else "harness")).split(",")
    unknown = set(variants) - {"harness", "fp16", "compile"} | ({"fp16"} & set(variants) if not cuda else set())
    if unknown:
        raise SystemExit(
            f"--variants: {', '.join(sorted(unknown))} not measurable here (harness, compile; fp16 on CUDA)"
        )
    setting = SETTING[args.size]
    peak, source = device_peak(device)
    print(f"peak {peak / 1e12:.1f} TFLOP/s ({source})", flush=True)
    rows = []
    profiles = {}
    with tempfile.TemporaryDirectory(prefix="paper-scale-") as root:
        cache = StageCache(Path(root))
        for student in STUDENTS[args.size]:
            config = trial_config(setting["teacher"], student, setting["image_size"])
            data = load_data(config.data, cache)
            batches = [setting["batch"]]
            if cuda:
                largest = largest_batch(config, data, device, setting["batch"])
                batches += [largest] if largest != setting["batch"] else []
            for batch in batches:
                for variant in variants:
                    row = {"student": student, "batch": batch, "variant": variant}
                    row |= measure(config, data, device, batch, variant, args.repeats)
                    row["mfu"] = row["flops_per_s"] / peak
                    rows.append(row)
                    print(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
            profiles[student] = profile(config, data, device, batches[-1])
    print_table(
        ["student", "batch", "variant", "amp", "images/s", "step s", "GFLOP/step", "MFU", "peak MB", "compile s"],
        [
            [r["student"], r["batch"], r["variant"], r["amp"], r["images_per_s"], r["step_s"]]
            + [r["flops_per_step"] / 1e9, r["mfu"], r["peak_memory_mb"], r["compile_s"]]
            for r in rows
        ],
    )
    for student, ops in profiles.items():
        print(f"\n{student}, one harness step by operator (self time):")
        print_table(["op", "self ms", "share"], [[o["op"], o["self_ms"], o["share"]] for o in ops])
    payload = {"setting": setting, "peak_flops": peak, "peak_source": source, "rows": rows, "profiles": profiles}
    write_result("paper_scale", args, payload)
    return payload


if __name__ == "__main__":
    main()
