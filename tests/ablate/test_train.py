"""The trainer's learning-rate schedule, weight averaging, initial weights and pre-trained backbones."""

from __future__ import annotations

import json
import math
import shutil
import types

import numpy as np
import pytest
import torch

import ablate
from ablate.cache._store import stable_hash
from ablate.config._resolve import resolve
from ablate.pipeline._loop import _ema, adamw, amp_dtype, grad_scaler, lr_factor, place
from ablate.pipeline._train import Trainer


def test_warmup_ramps_linearly_then_cosine_decays_to_zero() -> None:
    factors = [lr_factor(0.2, "cosine", 10, step) for step in range(10)]
    assert factors[:2] == [0.5, 1.0]  # 2 warm-up steps: 1/2, 2/2
    # cosine over the remaining 8 steps: 0.5 * (1 + cos(pi * k / 8))
    assert factors[2:] == pytest.approx([0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(8)])
    assert lr_factor(0.2, "cosine", 10, 10) == pytest.approx(0.0)


def test_constant_schedule_and_no_warmup() -> None:
    assert [lr_factor(0.0, "constant", 5, s) for s in range(5)] == [1.0] * 5
    assert lr_factor(0.0, "cosine", 4, 0) == 1.0
    assert lr_factor(0.01, "constant", 10, 0) == 1.0  # a share below one step still ramps over one step


def test_ema_averages_weights_and_buffers() -> None:
    module = torch.nn.BatchNorm1d(1)
    average = _ema(module, 0.75)
    assert _ema(module, 0.0) is None
    for value in (4.0, 8.0):
        with torch.no_grad():
            module.weight.fill_(value)
            module.running_mean.fill_(value)
        average.update_parameters(module)
    # the first update copies, later ones move by 1 - decay: 4, then 0.75 * 4 + 0.25 * 8 = 5
    assert average.module.weight.item() == pytest.approx(5.0)
    assert average.module.running_mean.item() == pytest.approx(5.0)


def test_cpu_training_runs_in_float32_with_plain_weights_and_optimizer() -> None:
    cpu = torch.device("cpu")
    assert amp_dtype(cpu) is None and not grad_scaler(cpu).is_enabled()
    conv = place(torch.nn.Conv2d(3, 4, 3), cpu)
    assert conv.weight.is_contiguous()
    assert not adamw(conv.parameters(), cpu, 1e-3, 0.0).defaults["fused"]


@pytest.mark.parametrize(("bf16", "dtype", "scaled"), [(True, torch.bfloat16, False), (False, torch.float16, True)])
def test_cuda_training_autocasts_to_bfloat16_where_supported_else_float16_with_loss_scaling(
    monkeypatch, bf16: bool, dtype: torch.dtype, scaled: bool
) -> None:
    monkeypatch.setattr(
        torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16 and not including_emulation
    )
    cuda = torch.device("cuda")
    assert amp_dtype(cuda) == dtype
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GradScaler checks for a GPU when enabled
    assert grad_scaler(cuda)._enabled is scaled


def _initial_weights(seed: int, init_seed: int | None, role: str) -> list[torch.Tensor]:
    config = ablate.TrialConfig.from_dict(resolve(None, {"seed": seed, "train.init_seed": init_seed}))
    trainer = Trainer(config, data=None, device=torch.device("cpu"), cache=None, progress=False)
    return [p.detach() for p in trainer.build(role).parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("role", ["teacher", "student"])
def test_init_seed_gives_every_trial_seed_the_same_initial_weights(role: str) -> None:
    assert not _same(_initial_weights(0, None, role), _initial_weights(1, None, role))
    assert _same(_initial_weights(0, 7, role), _initial_weights(1, 7, role))
    assert _same(_initial_weights(3, 3, role), _initial_weights(3, None, role))  # null means the trial seed


TINY_TEACHER_STUDENT = {
    "data": {"name": "synthetic-smoke", "n_train": 40, "n_val": 8, "n_test": 8},
    "train": {"epochs": 2, "batch_size": 16},  # a last batch of 8: the stream keeps uneven batches in place
    "threads": 1,
}


def _student_weights(result: ablate.TrialResult) -> dict[str, torch.Tensor]:
    return torch.load(result.checkpoints[-1], weights_only=True)["student"]


def test_student_from_cached_teacher_outputs_equals_one_with_the_live_teacher(tmp_path) -> None:
    cached = ablate.run_trial(TINY_TEACHER_STUDENT, cache=ablate.StageCache(tmp_path / "a"), progress=False)
    live_cache = ablate.StageCache(tmp_path / "b")
    live = ablate.run_trial({**TINY_TEACHER_STUDENT, "frozen_outputs_mb": 0}, cache=live_cache, progress=False)

    assert "frozen_outputs" not in live_cache.builds
    weights, live_weights = _student_weights(cached), _student_weights(live)
    assert weights.keys() == live_weights.keys()
    assert all(torch.equal(weights[k], live_weights[k]) for k in weights)
    assert cached.history == live.history
    assert cached.metrics.keys() == live.metrics.keys()
    pairs = [(cached.metrics[k], live.metrics[k]) for k in live.metrics]
    same = [a == b or (math.isnan(a) and math.isnan(b)) for a, b in pairs]
    assert all(same)


def test_every_student_of_a_lambda_sweep_reads_one_cached_teacher_stream(tmp_path) -> None:
    cache = ablate.StageCache(tmp_path)
    calls = []
    for weight in (0.5, 1.0, 1.5):
        result = ablate.run_trial(TINY_TEACHER_STUDENT, {"transfer.lambda": weight}, cache=cache, progress=False)
        calls.append(result.trainings)
    assert cache.builds["frozen_outputs"] == 1 and cache.builds["model"] == 4  # one teacher, three students
    assert calls == [2, 1, 1]
    stream = torch.load(next((tmp_path / "frozen_outputs").glob("*/outputs.pt")), weights_only=True)
    assert stream.shape == (2, 40, 2, 8, 8)  # epochs, train images, the teacher's class map


def test_a_teacher_stream_over_frozen_outputs_mb_runs_the_teacher_instead(tmp_path) -> None:
    cache = ablate.StageCache(tmp_path)
    ablate.run_trial({**TINY_TEACHER_STUDENT, "frozen_outputs_mb": 0.01}, cache=cache, progress=False)  # 40 kB
    assert "frozen_outputs" not in cache.builds


TINY_PRETRAIN = {"name": "fractaldb", "classes": 3, "per_class": 4, "image_size": 32, "steps": 3, "batch_size": 4}
TINY_STUDENT = {
    "data": {"name": "synthetic-smoke", "image_size": 32, "n_train": 16, "n_val": 8, "n_test": 8},
    "paradigm": {"name": "single", "network": "student"},
    "train": {"epochs": 1, "batch_size": 8},
    "threads": 1,
}


def _trainer(cache: ablate.StageCache, **overrides) -> Trainer:
    config = ablate.TrialConfig.from_dict(ablate.validate(TINY_STUDENT, overrides))
    data = types.SimpleNamespace(fingerprint="data")  # what model_inputs reads of the data
    return Trainer(config, data=data, device=torch.device("cpu"), cache=cache, progress=False)


def test_a_pretrained_backbone_is_trained_once_and_every_seed_starts_from_it(tmp_path) -> None:
    cache = ablate.StageCache(tmp_path)
    first, second = (_trainer(cache, seed=s, **{"student.pretrain": TINY_PRETRAIN}) for s in (0, 1))
    networks = [first.build("student"), second.build("student")]

    assert cache.builds["pretrained"] == 1 and first.trainings == 1 and second.trainings == 0
    state = torch.load(next((tmp_path / "pretrained").glob("*/backbone.pt")), weights_only=True)
    for network in networks:  # the backbone is the pre-trained one, bit for bit
        assert all(torch.equal(network.backbone.state_dict()[k], state[k]) for k in state)
    # the head keeps the initial weights of the trial's seed
    assert not torch.equal(networks[0].head.classifier.weight, networks[1].head.classifier.weight)
    scratch = _trainer(cache, seed=0).build("student")
    assert not torch.equal(scratch.backbone.state_dict()["model.pos_embed"], state["model.pos_embed"])
    record = json.loads(next((tmp_path / "pretrained").glob("*/pretraining.json")).read_text())
    assert [entry["step"] for entry in record["history"]] == [3]  # logged every 100 steps and at the last


def test_a_pretrainer_setting_that_cannot_make_its_task_names_the_field(tmp_path) -> None:
    # "ablate: error: fractaldb: fewer than 3 fractals fill 0.99 ..." named no field
    impossible = {**TINY_PRETRAIN, "min_fill": 0.99}
    with pytest.raises(ablate.ConfigError, match=r"^student.pretrain \(fractaldb\): fractaldb: fewer than 3 fractals"):
        _trainer(ablate.StageCache(tmp_path), **{"student.pretrain": impossible}).build("student")


def test_pretraining_changes_the_model_key_and_a_new_pretrainer_setting_pretrains_again(tmp_path) -> None:
    cache = ablate.StageCache(tmp_path)
    plain = _trainer(cache).model_inputs(("student",))
    pretrained = _trainer(cache, **{"student.pretrain": TINY_PRETRAIN})
    assert stable_hash(plain) != stable_hash(pretrained.model_inputs(("student",)))
    pretrained.build("student")
    _trainer(cache, **{"student.pretrain": {**TINY_PRETRAIN, "steps": 4}}).build("student")
    assert cache.builds["pretrained"] == 2


def test_a_trial_with_a_pretrained_student_runs_and_reuses_the_pretraining(tmp_path) -> None:
    cache = ablate.StageCache(tmp_path)
    results = [
        ablate.run_trial(TINY_STUDENT, {"seed": s, "student.pretrain": TINY_PRETRAIN}, cache=cache, progress=False)
        for s in (0, 1)
    ]
    assert [r.trainings for r in results] == [2, 1]  # pre-training + student, then the student only
    assert results[0].config["student"]["pretrain"] == TINY_PRETRAIN | {"name": "fractaldb"}


def test_a_pretrainer_returning_mismatched_arrays_is_named(tmp_path, plugin_folder) -> None:
    @ablate.PRETRAINERS.register("broken-task")
    def broken() -> ablate.Pretraining:
        return ablate.Pretraining(np.zeros((4, 8, 8, 3), np.float32), np.zeros(4, int), 1, 2, 0.1)

    with pytest.raises(ValueError, match=r"student\.pretrain \(broken-task\): expected uint8 images"):
        _trainer(ablate.StageCache(tmp_path), **{"student.pretrain": {"name": "broken-task"}}).build("student")


def test_on_epoch_sees_each_epoch_of_the_evaluated_networks_training_only(tmp_path) -> None:
    seen: list[dict] = []
    ablate.run_trial(TINY_TEACHER_STUDENT, cache=ablate.StageCache(tmp_path), progress=False, on_epoch=seen.append)
    # the teacher trained first (2 epochs) is not the network the trial evaluates: only the student's epochs
    assert [(e["tag"], e["epoch"]) for e in seen] == [("student", 1), ("student", 2)]
    assert {"cls", "tf", "loss", "lr"} <= set(seen[0])


def test_a_trial_draws_the_same_whether_its_pretraining_was_built_or_cached(tmp_path) -> None:
    config = {**TINY_TEACHER_STUDENT, "student": {"pretrain": TINY_PRETRAIN}}
    built = ablate.run_trial(config, cache=ablate.StageCache(tmp_path / "a"), progress=False)
    (tmp_path / "b").mkdir()
    shutil.copytree(tmp_path / "a" / "pretrained", tmp_path / "b" / "pretrained")  # only the pre-training cached
    cached_cache = ablate.StageCache(tmp_path / "b")
    cached = ablate.run_trial(config, cache=cached_cache, progress=False)
    assert "pretrained" not in cached_cache.builds and cached_cache.builds["model"] == 2
    # the projection of L_tf is drawn after the student is built: the same draw either way
    weights, again = _student_weights(built), _student_weights(cached)
    assert all(torch.equal(weights[k], again[k]) for k in weights)
    assert built.history == cached.history


def test_train_compile_compiles_the_trained_network_in_place(tmp_path, monkeypatch) -> None:
    compiled: list[str] = []
    compile_module = torch.nn.Module.compile

    def traced_only(module: torch.nn.Module, **kwargs) -> None:
        # dynamo and AOTAutograd trace the network as inductor would, but run its ops unfused: the same numbers,
        # without the minute of C++ code generation
        compiled.append(type(module).__name__)
        compile_module(module, backend="aot_eager", **kwargs)

    monkeypatch.setattr(torch.nn.Module, "compile", traced_only)
    plain_run = ablate.run_trial(TINY_STUDENT, cache=ablate.StageCache(tmp_path / "a"), progress=False)
    assert compiled == []
    compiled_run = ablate.run_trial(
        TINY_STUDENT, {"train.compile": True}, cache=ablate.StageCache(tmp_path / "b"), progress=False
    )
    assert compiled == ["Network"]
    weights = torch.load(plain_run.checkpoints[-1], weights_only=True)["student"]
    compiled_weights = torch.load(compiled_run.checkpoints[-1], weights_only=True)["student"]
    assert weights.keys() == compiled_weights.keys()  # no _orig_mod. prefix: the cache loads it as any network
    assert all(torch.allclose(weights[k], compiled_weights[k], rtol=1e-5, atol=1e-6) for k in weights)
    losses = [[entry["loss"] for entry in run.history] for run in (plain_run, compiled_run)]
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
