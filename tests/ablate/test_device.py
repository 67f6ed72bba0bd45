"""Which GPU each --workers process sees (GPUs faked: the test machine has none)."""

from __future__ import annotations

import pytest
import torch

from ablate.pipeline._device import cpu_model, describe_device, worker_gpus


@pytest.mark.parametrize(
    ("count", "visible", "workers", "expected"),
    [
        (4, None, 5, ["0", "1", "2", "3", "0"]),  # one GPU per worker, in turn
        (8, "2,5", 3, ["2", "5", "2"]),  # only the GPUs the user made visible
        (1, None, 2, [None, None]),  # one GPU: every worker shares it, environment untouched
        (0, None, 2, [None, None]),  # a CPU machine
        (4, "3", 2, [None, None]),  # the user pinned one GPU already
    ],
)
def test_each_worker_gets_its_own_gpu(monkeypatch, count, visible, workers, expected) -> None:
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert worker_gpus(workers) == expected


def test_workers_are_started_with_their_gpu(monkeypatch, tmp_path) -> None:
    import subprocess
    from types import SimpleNamespace

    from ablate.cli._run import _work

    started, names = [], []

    class FakeChild:
        def __init__(self, command, env, start_new_session):
            started.append(env.get("CUDA_VISIBLE_DEVICES"))
            names.append(command[command.index("--worker") + 1])

        def wait(self) -> int:
            return 0

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(subprocess, "Popen", FakeChild)
    stored = SimpleNamespace(url="sqlite://", folder=tmp_path)
    runner = SimpleNamespace(study=SimpleNamespace(path=tmp_path / "s.yaml"), stored=stored)
    args = SimpleNamespace(workers=3, retries=0, fail_fast=False, quiet=False)
    assert _work(args, runner) is False
    assert started == ["0", "1", "0"]
    assert names == ["1/3", "2/3", "3/3"]  # each worker's log lines start [worker k/3]


def test_a_cpu_trial_records_the_processor_and_its_threads(monkeypatch) -> None:
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    assert describe_device(torch.device("cpu")) == f"cpu ({cpu_model()}, 3 threads)"
    assert cpu_model()
