"""One trial end to end: every paradigm x level x distance, the stage cache, validation and failures."""

from __future__ import annotations

import math
import sys
import textwrap
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import timm
import torch

import ablate
from ablate.pipeline._pool import map_images
from ablate.pipeline._trial import gallery_indices

TINY: dict[str, Any] = {
    "data": {"name": "synthetic-smoke", "n_train": 32, "n_val": 8, "n_test": 8},
    "train": {"epochs": 1, "batch_size": 16},
    "threads": 1,  # tiny models: thread hand-offs cost more than they save
}
# Ratios that are not shares of something, so not bounded by 1.
UNBOUNDED = {"chimney_per_tp"}
# Differences of two shares and correlations, in [-1, 1].
SIGNED = {"accuracy_gap", "smoke_cam_correlation"}
PARADIGMS = {
    "single_student": {"paradigm": {"name": "single", "network": "student"}},
    "single_teacher": {"paradigm": {"name": "single", "network": "teacher"}, "cam": {"network": "teacher"}},
    "teacher_student": {"paradigm": "teacher_student"},
    "co_training": {"paradigm": "co_training"},
}


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _config(**sections: Any) -> dict[str, Any]:
    return {**TINY, **sections}


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


@pytest.mark.parametrize("distance", ["cosine", "l1", "l2"])
@pytest.mark.parametrize("level", ["global", "spatial", "channel"])
@pytest.mark.parametrize("paradigm", list(PARADIGMS))
def test_every_paradigm_level_and_distance_runs(
    paradigm: str, level: str, distance: str, shared_cache: ablate.StageCache
) -> None:
    config = _config(**PARADIGMS[paradigm], transfer={"level": level, "distance": distance})
    result = ablate.run_trial(config, cache=shared_cache, progress=False)

    assert set(result.metrics) == set(ablate.METRICS.names())
    for name, value in result.metrics.items():
        low, high = (-1.0 if name in SIGNED else 0.0), (math.inf if name in UNBOUNDED else 1.0)
        assert math.isnan(value) or low <= value <= high, (name, value)
    assert len(result.per_image_iou) == len(result.image_names) == 8
    assert not result.oracle
    assert result.trainings <= 2
    assert all(math.isfinite(v) for h in result.history for k, v in h.items() if k != "tag")
    if paradigm in ("teacher_student", "co_training"):
        # the transfer section is part of these models: each (level, distance) trains its own student
        assert result.trainings >= 1
        assert all("tf" in h or "cls_student" in h for h in result.history if h["tag"] != "teacher")
    assert result.config["transfer"]["level"] == {"name": level}


def test_second_identical_run_trains_nothing(shared_cache: ablate.StageCache) -> None:
    config = _config(seed=1)
    first = ablate.run_trial(config, cache=shared_cache, progress=False)
    built = dict(shared_cache.builds)
    second = ablate.run_trial(config, cache=shared_cache, progress=False)
    assert second.trainings == 0 and second.history == []
    assert shared_cache.builds == built  # not even a CAM set was recomputed
    assert _same(first.metrics, second.metrics)
    np.testing.assert_array_equal(first.per_image_iou, second.per_image_iou)


def test_a_step_on_the_ground_truth_or_on_random_weights_marks_the_trial(shared_cache: ablate.StageCache) -> None:
    sam = {"name": "sam", "model_type": "tiny", "points_per_side": 2}
    marked = ablate.run_trial(_config(postprocess=["oracle_threshold", sam]), cache=shared_cache, progress=False)
    assert marked.marks == ["oracle", "random weights"] and marked.oracle
    plain = ablate.run_trial(_config(postprocess=["crf"]), cache=shared_cache, progress=False)
    assert plain.marks == [] and not plain.oracle


def test_teacher_is_shared_between_lambdas(tmp_path: Path) -> None:
    cache = ablate.StageCache(tmp_path)
    first = ablate.run_trial(_config(transfer={"lambda": 0.5}), cache=cache, progress=False)
    second = ablate.run_trial(_config(transfer={"lambda": 0.8}), cache=cache, progress=False)
    assert first.trainings == 2 and [h["tag"] for h in first.history] == ["teacher", "student"]
    assert second.trainings == 1 and [h["tag"] for h in second.history] == ["student"]


def test_a_network_trained_alone_is_shared_by_every_paradigm(tmp_path: Path) -> None:
    """The frozen teacher of teacher-student is the teacher-alone baseline (the classifier's key names no paradigm)."""
    cache = ablate.StageCache(tmp_path)
    assert ablate.run_trial(_config(), cache=cache, progress=False).trainings == 2
    alone = ablate.run_trial(_config(**PARADIGMS["single_teacher"]), cache=cache, progress=False)
    assert alone.trainings == 0


def test_same_seed_in_fresh_caches_gives_identical_results(tmp_path: Path) -> None:
    config = _config(seed=2)
    a = ablate.run_trial(config, cache=ablate.StageCache(tmp_path / "a"), progress=False)
    b = ablate.run_trial(config, cache=ablate.StageCache(tmp_path / "b"), progress=False)
    assert a.trainings == b.trainings == 2
    # bitwise on the CPU; CUDA's atomics-based backward kernels are not bitwise reproducible
    same = (
        np.testing.assert_array_equal
        if not torch.cuda.is_available()
        else partial(np.testing.assert_allclose, atol=5e-3)
    )
    assert a.metrics.keys() == b.metrics.keys()
    same([a.metrics[k] for k in a.metrics], [b.metrics[k] for k in a.metrics])
    same(a.per_image_iou, b.per_image_iou)
    assert [h.keys() for h in a.history] == [h.keys() for h in b.history]
    for row_a, row_b in zip(a.history, b.history, strict=True):
        same([row_a[k] for k in row_a if k != "tag"], [row_b[k] for k in row_a if k != "tag"])
    same(a.gallery["cams"], b.gallery["cams"])


def test_projection_none_with_mismatched_channels_is_rejected_before_training(tmp_path: Path) -> None:
    config = _config(transfer={"projection": "none"})
    with pytest.raises(ablate.ConfigError) as info:
        ablate.validate(config)
    # student: test_vit features (64 channels); teacher: its class map (2 channels)
    assert str(info.value).startswith(
        "transfer.projection: 'none' learns no mapping, but the student's aligned map has 64 channels and the "
        "teacher's 2"
    )
    cache = ablate.StageCache(tmp_path)
    with pytest.raises(ablate.ConfigError, match="transfer.projection"):
        ablate.run_trial(config, cache=cache, progress=False)
    assert cache.entries() == [] and not (tmp_path / "datasets").exists()  # failed before data and training


def test_projection_none_is_fine_when_channels_match() -> None:
    ablate.validate(_config(transfer={"projection": "none"}, student={"align": "class_map"}))
    # a paradigm without transfer does not care
    ablate.validate(_config(transfer={"projection": "none"}, paradigm="single"))


def test_an_image_size_the_vit_patch_does_not_divide_is_rejected_before_training() -> None:
    # every trial failed in training with timm's "Input height (36) should be divisible by patch size (8)"
    data = {**TINY["data"], "image_size": 36}
    with pytest.raises(
        ablate.ConfigError, match=r"student: a 36 px image \(data.image_size\) does not fit its backbone"
    ):
        ablate.validate(_config(data=data))
    ablate.validate(_config(data=data, paradigm={"name": "single", "network": "teacher"}))  # the CNN takes any size


def test_cam_network_not_trained_by_the_paradigm_is_rejected() -> None:
    with pytest.raises(ablate.ConfigError) as info:
        ablate.validate(_config(paradigm={"name": "single", "network": "student"}, cam={"network": "teacher"}))
    assert str(info.value) == "cam.network: 'teacher' is not trained by paradigm 'single' (it trains student)"


@pytest.mark.parametrize(
    ("paradigm", "network"),
    [("teacher_student", "student"), ("co_training", "student"), ({"name": "single", "network": "teacher"}, "teacher")],
)
def test_cam_network_auto_is_the_last_trained_network(paradigm: Any, network: str) -> None:
    assert ablate.validate(_config(paradigm=paradigm))["cam"]["network"] == network


def test_bad_cam_layer_is_rejected() -> None:
    with pytest.raises(ablate.ConfigError, match=r"^cam.layer: layer 'blocks.9.norm1': '9' does not exist"):
        ablate.validate(_config(cam={"layer": "blocks.9.norm1"}))


@pytest.fixture
def nan_plugin(plugin_folder: Path) -> Iterator[str]:
    """A plugin module registering the distance ``nan`` (undone afterwards)."""
    (plugin_folder / "trial_test_nan.py").write_text(
        textwrap.dedent(
            '''
            from ablate import DISTANCES

            @DISTANCES.register("nan")
            def nan():
                """Always NaN."""
                return lambda a, b: (a - b).sum(dim=-1) * float("nan")

            @DISTANCES.register("nan_from_call")
            def nan_from_call(call: int = 1):
                """L1, then NaN from the ``call``-th call on."""
                calls = []

                def distance(a, b):
                    calls.append(1)
                    return (a - b).abs().sum(dim=-1) * (float("nan") if len(calls) >= call else 1.0)

                return distance
            '''
        )
    )
    yield "trial_test_nan"
    sys.modules.pop("trial_test_nan", None)


@pytest.mark.parametrize(("paradigm", "training"), [("teacher_student", "student"), ("co_training", "co-training")])
def test_nan_loss_raises_diverged_naming_the_training(
    nan_plugin: str, paradigm: str, training: str, shared_cache: ablate.StageCache
) -> None:
    config = _config(plugins=[nan_plugin], paradigm=paradigm, transfer={"distance": "nan"})
    with pytest.raises(ablate.Diverged, match=rf"^{training} diverged at epoch 1, step 1 \(loss nan\)$"):
        ablate.run_trial(config, cache=shared_cache, progress=False)


def test_diverged_names_the_first_non_finite_step_of_a_later_epoch(
    nan_plugin: str, shared_cache: ablate.StageCache
) -> None:
    # 32 images in batches of 1: 32 steps per epoch, so call 57 is epoch 2, step 25 (losses are read every 20)
    config = _config(
        plugins=[nan_plugin],
        paradigm="co_training",
        train={"epochs": 3, "batch_size": 1},
        transfer={"distance": {"name": "nan_from_call", "call": 57}},
    )
    with pytest.raises(ablate.Diverged, match=r"^co-training diverged at epoch 2, step 25 \(loss nan\)$"):
        ablate.run_trial(config, cache=shared_cache, progress=False)


def test_unknown_timm_model_is_rejected_with_suggestion() -> None:
    with pytest.raises(ablate.ConfigError) as info:
        ablate.validate(_config(student={"backbone": {"model": "test_vitt"}}))
    assert str(info.value).startswith("student: 'test_vitt' is not a timm model (did you mean 'test_vit'?)")


def test_pretrained_weights_fail_offline_with_a_hint_at_checkpoint(tmp_path: Path) -> None:
    config = _config(paradigm={"name": "single", "network": "teacher"}, cam={"network": "teacher"})
    config["teacher"] = {"backbone": {"pretrained": True}}
    with pytest.raises(ablate.ConfigError) as info:
        ablate.run_trial(config, cache=ablate.StageCache(tmp_path), progress=False)
    message = str(info.value)
    assert "'test_resnet': pretrained weights cannot be downloaded (HF_HUB_OFFLINE is set)" in message
    assert "`checkpoint: /path/to/weights`" in message


def test_pretrained_student_offline_fails_before_training_the_teacher(tmp_path: Path) -> None:
    cache = ablate.StageCache(tmp_path)
    with pytest.raises(ablate.ConfigError, match="checkpoint"):
        ablate.run_trial(_config(student={"backbone": {"pretrained": True}}), cache=cache, progress=False)
    assert [stage for stage, *_ in cache.entries()] == []


def _random_resnet_checkpoint(path: Path, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = timm.create_model("test_resnet")
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    torch.save(model.state_dict(), path)
    return model.state_dict()


def test_local_checkpoint_is_loaded(tmp_path: Path) -> None:
    saved = _random_resnet_checkpoint(tmp_path / "weights.pth", seed=5)
    backbone = ablate.BACKBONES.create(
        "timm", model="test_resnet", checkpoint=str(tmp_path / "weights.pth"), model_args={"output_stride": 8}
    )
    loaded = backbone.model.state_dict()
    assert set(saved) - set(loaded) == {"fc.weight", "fc.bias"}  # the classifier is dropped (num_classes=0)
    for key, value in loaded.items():
        torch.testing.assert_close(value, saved[key], rtol=0, atol=0, msg=key)
    fresh = ablate.BACKBONES.create("timm", model="test_resnet").model.state_dict()
    assert not torch.equal(fresh["conv1.0.weight"], loaded["conv1.0.weight"])  # without checkpoint: random init


def test_missing_checkpoint_is_rejected_by_validate(tmp_path: Path) -> None:
    with pytest.raises(ablate.ConfigError, match=r"^teacher: backbone 'test_resnet': checkpoint .*nope.pth does not"):
        ablate.validate(_config(teacher={"backbone": {"checkpoint": str(tmp_path / "nope.pth")}}))


def test_changed_checkpoint_file_retrains(tmp_path: Path) -> None:
    weights = tmp_path / "weights.pth"
    config = _config(
        paradigm={"name": "single", "network": "teacher"},
        cam={"network": "teacher"},
        teacher={"backbone": {"checkpoint": str(weights)}},
    )
    cache = ablate.StageCache(tmp_path / "cache")
    _random_resnet_checkpoint(weights, seed=1)
    assert ablate.run_trial(config, cache=cache, progress=False).trainings == 1
    _random_resnet_checkpoint(weights, seed=2)
    assert ablate.run_trial(config, cache=cache, progress=False).trainings == 1


def test_gallery_indices_picks_the_four_cases() -> None:
    labels = np.array([1, 1, 0, 1, 0, 1, 0, 0, 1])
    has_object = np.array([1, 0, 1, 1, 0, 1, 1, 0, 0], dtype=bool)
    cooccur = np.zeros((9, 2, 2), np.uint8)
    cooccur[has_object, 1, 0] = 1
    # smoke + object: 0, 3 | smoke alone: 1, 8 | object alone: 2, 6 | clean negatives: 4, 7
    assert gallery_indices(labels, cooccur).tolist() == [0, 3, 1, 8, 2, 6, 4, 7]
    assert gallery_indices(labels, cooccur, per_case=1).tolist() == [0, 1, 2, 4]
    # without co-occurrence masks every image counts as "no object"
    assert gallery_indices(labels, None).tolist() == [0, 1, 2, 4]
    # a case without images is skipped
    assert gallery_indices(labels[[0, 3, 1]], cooccur[[0, 3, 1]], per_case=3).tolist() == [0, 1, 2]
    assert gallery_indices(labels, cooccur).dtype == np.int64


def test_trial_gallery_shows_the_test_images_of_each_case(shared_cache: ablate.StageCache) -> None:
    result = ablate.run_trial(_config(), cache=shared_cache, progress=False)
    gallery = result.gallery
    assert len(gallery["indices"]) == 8  # 8 test images: 2 of each case
    assert gallery["images"].shape == (8, 64, 64, 3) and gallery["masks"].shape == (8, 64, 64)
    assert gallery["cams"].shape == gallery["pred"].shape == gallery["cooccur"].shape == (8, 64, 64)
    smoke = gallery["masks"].reshape(8, -1).any(axis=1)
    chimney = gallery["cooccur"].reshape(8, -1).any(axis=1)
    assert smoke.tolist() == [True] * 4 + [False] * 4
    assert chimney.tolist() == [True, True, False, False, True, True, False, False]


TORCH_JOB = '''
import torch


def torch_job(row):
    """Uses torch's thread pool inside a worker process."""
    return float((torch.as_tensor(row) @ torch.ones(len(row), 64)).sum())
'''


def test_map_images_runs_torch_work_in_worker_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "torch_job_module.py").write_text(TORCH_JOB)
    monkeypatch.syspath_prepend(str(tmp_path))
    import torch_job_module

    torch.ones(256, 256) @ torch.ones(256, 256)  # the parent's OpenMP pool has run: plain fork would hang
    rows = np.arange(32, dtype=np.float32).reshape(16, 2)
    assert map_images(torch_job_module.torch_job, rows, workers=2) == [float(r.sum() * 64) for r in rows]


def test_map_images_recovers_from_a_killed_pool_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import signal

    from ablate.pipeline._pool import image_pool

    (tmp_path / "torch_job_module.py").write_text(TORCH_JOB)
    monkeypatch.syspath_prepend(str(tmp_path))
    import torch_job_module

    rows = np.arange(32, dtype=np.float32).reshape(16, 2)
    map_images(torch_job_module.torch_job, rows, workers=2)
    for pid in list(image_pool(2)._processes):  # what an out-of-memory kill does to a worker
        os.kill(pid, signal.SIGKILL)
    assert map_images(torch_job_module.torch_job, rows, workers=2) == [float(r.sum() * 64) for r in rows]


SCALED = '''
from ablate import DISTANCES


@DISTANCES.register("scaled_l1")
def scaled_l1():
    """L1 times a constant."""
    return lambda a, b: (a - b).abs().mean(dim=-1) * {factor}
'''


def test_editing_a_component_retrains_exactly_what_it_produced(tmp_path: Path, plugin_folder: Path) -> None:
    import importlib

    source = tmp_path / "trial_test_scaled.py"
    source.write_text(SCALED.format(factor=1.0))
    cache = ablate.StageCache(tmp_path / "cache")
    config = _config(plugins=["trial_test_scaled"], transfer={"distance": "scaled_l1"})
    try:
        first = ablate.run_trial(config, cache=cache, progress=False)
        assert first.trainings == 2 and ablate.run_trial(config, cache=cache, progress=False).trainings == 0
        source.write_text(SCALED.format(factor=0.0))  # the loss no longer transfers anything
        del ablate.DISTANCES._entries["scaled_l1"]
        importlib.reload(sys.modules["trial_test_scaled"])
        stale = [entry for _, entry, _, _ in cache.entries() if cache.outdated(entry)]
        assert stale and all(cache.outdated(entry) == ["trial_test_scaled"] for entry in stale)
        edited = ablate.run_trial(config, cache=cache, progress=False)
        assert edited.trainings == 1  # the student again; the teacher never used the distance
        assert edited.checkpoints[0] == first.checkpoints[0] and edited.checkpoints[1] != first.checkpoints[1]
        assert cache.prune(outdated_only=True) == len(stale)
    finally:
        sys.modules.pop("trial_test_scaled", None)


def test_layers_a_post_processing_step_asks_for_are_checked_before_training() -> None:
    # the default student has 4 blocks: cam_fusion's paper default (blocks -5, -4, -2, -1) names one it lacks
    with pytest.raises(ablate.ConfigError, match=r"postprocess\[0\] \(cam_fusion\)\.layers: layer 'blocks\.-5'"):
        ablate.validate({"postprocess": ["cam_fusion"]})
    ablate.validate({"postprocess": [{"name": "cam_fusion", "layers": ["blocks.-2", "blocks.-1"]}]})


def test_a_trial_served_cached_cams_names_the_weights_they_were_made_by(tmp_path: Path) -> None:
    # a post-processing variant loads no network: it stored no weights, and `ablate export` wrote an empty model
    cache = ablate.StageCache(tmp_path / "cache")
    first = ablate.run_trial(_config(paradigm={"name": "single"}), cache=cache, progress=False)
    variant = _config(paradigm={"name": "single"}, postprocess=[{"name": "threshold", "value": 0.5}])
    second = ablate.run_trial(variant, cache=cache, progress=False)
    assert second.trainings == 0 and second.timings.get("train") is None  # no network was loaded
    assert second.checkpoints == first.checkpoints and len(first.checkpoints) == 1
