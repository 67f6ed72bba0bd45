"""Stage 3: label gating, the ignore band, the segmenter's cache keys, metric prefixes and its errors."""

from __future__ import annotations

import math
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import ablate
from ablate.pipeline._loop import lr_factor
from ablate.pipeline._metrics import is_metric, lower_is_better, metric_entry
from ablate.pipeline._segment import IGNORE, gate, with_ignore_band
from ablate.pipeline._trial import TrialRun

TINY: dict[str, Any] = {
    "data": {"name": "synthetic-smoke", "n_train": 32, "n_val": 8, "n_test": 8},
    "train": {"epochs": 1, "batch_size": 16},
    "threads": 1,
    "segment": {"name": "tiny", "epochs": 1, "channels": 8},
}


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def _entries(cache: ablate.StageCache, stage: str) -> int:
    return len(list((Path(cache.root) / stage).glob("*/meta.json")))


def test_gate_clears_every_pixel_of_images_labelled_smoke_free() -> None:
    masks = np.ones((3, 2, 2), dtype=bool)
    gated = gate(masks, np.array([1, 0, 1]))
    assert gated.dtype == np.uint8
    assert gated.sum(axis=(1, 2)).tolist() == [4, 0, 4]


def test_ignore_band_marks_pixels_within_width_of_the_other_class() -> None:
    mask = np.zeros((1, 7, 7), dtype=bool)
    mask[0, 3, 3] = True  # one smoke pixel: with width 1 its 3x3 neighbourhood is uncertain, the rest stays
    targets = with_ignore_band(mask, 1)
    expected = np.zeros((7, 7), dtype=np.uint8)
    expected[2:5, 2:5] = IGNORE
    assert (targets[0] == expected).all()
    assert (with_ignore_band(mask, 0)[0] == mask[0]).all()
    whole = np.ones((1, 4, 4), dtype=bool)  # no boundary inside the image: nothing ignored
    assert (with_ignore_band(whole, 2) == 1).all()


def test_poly_schedule() -> None:
    assert lr_factor(0.0, "poly", 10, 0) == 1.0
    assert lr_factor(0.0, "poly", 10, 5) == pytest.approx(0.5**0.9)
    assert lr_factor(0.0, "poly", 10, 10) == 0.0


def test_stage_prefixes_name_registered_metrics() -> None:
    ablate.load_components()
    assert metric_entry("seg_smoke_iou").name == "smoke_iou"
    assert metric_entry("train_miou").name == "miou"
    assert is_metric("seg_chimney_claimed") and not is_metric("seg_nothing") and not is_metric("segx_miou")
    assert lower_is_better("seg_false_activation") == lower_is_better("false_activation")


def test_pseudo_masks_of_the_train_split_are_gated_by_the_image_labels(tmp_path: Path) -> None:
    config = ablate.TrialConfig.from_dict(ablate.validate({**TINY, "postprocess": [{"name": "threshold", "value": 0}]}))
    run = TrialRun(config, ablate.StageCache(tmp_path), progress=False)
    cams, masks = run.segment.train_pseudo_masks()
    labels = run.data.train.labels
    assert cams.shape == masks.shape == run.data.train.masks.shape
    # a threshold of 0 marks every pixel: exactly the pixels of the images labelled smoke survive
    assert (masks == labels[:, None, None]).all()
    assert 0 < labels.sum() < len(labels)


def test_metrics_with_prefixes_and_cache_reuse(tmp_path: Path) -> None:
    cache = ablate.StageCache(tmp_path)
    first = ablate.run_trial(TINY, cache=cache, progress=False)
    names = ablate.METRICS.names()
    plain = {k for k in first.metrics if not k.startswith(("seg_", "train_"))}
    assert plain == set(names)
    assert {k for k in first.metrics if k.startswith("seg_")} == {f"seg_{n}" for n in names}
    train = {k for k in first.metrics if k.startswith("train_")}
    assert {"train_smoke_iou", "train_miou"} <= train and all(not math.isnan(first.metrics[k]) for k in train)
    assert first.trainings == 3  # teacher, student, segmenter
    assert "segment" in first.timings
    assert first.gallery["seg_pred"].shape == first.gallery["pred"].shape
    assert [h["epoch"] for h in first.history if h["tag"] == "segmenter"] == [1]

    again = ablate.run_trial(TINY, cache=cache, progress=False)
    assert again.trainings == 0 and _same(again.metrics, first.metrics)

    # a segmenter-only change: the pseudo-masks come from the cache, only the segmenter trains
    epochs = ablate.run_trial(TINY, {"segment.epochs": 2}, cache=cache, progress=False)
    assert epochs.trainings == 1 and _entries(cache, "pseudo_masks") == 1
    assert _entries(cache, "model") == 2
    # a post-processing-only change: new pseudo-masks and segmenter, no classifier retrained
    chain = ablate.run_trial(TINY, {"postprocess": [{"name": "threshold", "value": 0.5}]}, cache=cache, progress=False)
    assert chain.trainings == 1 and _entries(cache, "pseudo_masks") == 2 and _entries(cache, "model") == 2
    # another seed: everything anew
    assert ablate.run_trial(TINY, {"seed": 1}, cache=cache, progress=False).trainings == 3


def test_segmenter_trained_on_ground_truth_is_the_upper_bound(tmp_path: Path) -> None:
    cache = ablate.StageCache(tmp_path)
    result = ablate.run_trial(TINY, {"segment.masks": "ground_truth"}, cache=cache, progress=False)
    assert not any(k.startswith("train_") for k in result.metrics)  # no pseudo-masks were made
    assert _entries(cache, "pseudo_masks") == 0 and "seg_smoke_iou" in result.metrics


def test_same_seed_same_segmenter_bit_for_bit(tmp_path: Path) -> None:
    a = ablate.run_trial(TINY, cache=ablate.StageCache(tmp_path / "a"), progress=False)
    b = ablate.run_trial(TINY, cache=ablate.StageCache(tmp_path / "b"), progress=False)
    assert _same(a.metrics, b.metrics)
    weights = [torch.load(r.checkpoints[-1], weights_only=True) for r in (a, b)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def _folder(root: Path) -> Path:
    """A folder dataset without train masks: 4 train images per class, 2 test images."""
    rng = np.random.default_rng(0)
    for label, name in enumerate(("no_smoke", "smoke")):
        for i in range(4):
            path = root / "train" / name / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) // (2 - label)).save(path)
    for stem, box in (("a", True), ("b", False)):
        for kind in ("images", "masks"):
            (root / "test" / kind).mkdir(parents=True, exist_ok=True)
        image = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "test" / "images" / f"{stem}.png")
        mask = np.zeros((32, 32), dtype=np.uint8)
        mask[:10, :10] = 255 if box else 0
        Image.fromarray(mask).save(root / "test" / "masks" / f"{stem}.png")
    return root


def test_a_study_whose_stage_3_needs_train_masks_the_data_lacks_is_refused_at_validation(tmp_path: Path) -> None:
    # it validated, then every such trial failed mid-run
    from ablate.study import load_study

    root = _folder(tmp_path / "data")
    config = {**TINY, "data": {"name": "folder", "root": str(root), "image_size": 32}, "segment": {"name": "tiny"}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({"config": config, "grid": {"segment.masks": ["pseudo", "ground_truth"]}}))
    with pytest.raises(ablate.ConfigError, match=r"segment.masks: ground_truth needs masks of the train split.*"
                       r"\(configuration \{\"segment.masks\": \"ground_truth\"\}\)"):  # fmt: skip
        load_study(path)


def test_folder_data_with_and_without_train_masks(tmp_path: Path) -> None:
    root = _folder(tmp_path / "data")
    config = {**TINY, "data": {"name": "folder", "root": str(root), "image_size": 32}}
    small = {"train.batch_size": 4, "segment.batch_size": 4}
    cache = ablate.StageCache(tmp_path / "cache")
    result = ablate.run_trial(config, small, cache=cache, progress=False)
    assert "seg_smoke_iou" in result.metrics and not any(k.startswith("train_") for k in result.metrics)
    with pytest.raises(ablate.ConfigError, match=r"^segment.masks: ground_truth needs masks of the train split"):
        ablate.run_trial(config, {**small, "segment.masks": "ground_truth"}, cache=cache, progress=False)
    for image in (root / "train").glob("*/*.png"):  # now with train masks: a smoke box in each smoke image
        mask = np.zeros((32, 32), dtype=np.uint8)
        mask[:8, :8] = 255 if image.parent.name == "smoke" else 0
        (root / "train" / "masks" / image.parent.name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask).save(root / "train" / "masks" / image.parent.name / image.name)
    with_masks = ablate.run_trial(config, small, cache=cache, progress=False)
    assert "train_smoke_iou" in with_masks.metrics
    bound = ablate.run_trial(config, {**small, "segment.masks": "ground_truth"}, cache=cache, progress=False)
    assert "seg_smoke_iou" in bound.metrics


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"segment.epochs": 0}, "segment.epochs: expected int >= 1, got 0"),
        ({"segment.masks": "gt"}, "segment.masks: expected one of pseudo, ground_truth, got 'gt'"),
        ({"segment.optimizer": "sgd"}, "segment.optimizer: expected one of adamw, poly_sgd, got 'sgd'"),
        ({"segment.chanels": 4}, "segment: unknown parameter 'chanels' for segmenters 'tiny' (did you mean 'channels'"),
        ({"segment.optimizr": 1}, "segment: unknown parameter 'optimizr' for segmenters 'tiny' (did you mean 'optim"),
        ({"segment": "tinny"}, "segment.name: 'tinny' is not in the segmenters registry (did you mean 'tiny'?)"),
        ({"segment": {"name": "fpn", "model": "resnet5"}}, "segment (fpn): 'resnet5' is not a timm model"),
    ],
)
def test_bad_segment_settings_are_named(overrides: dict[str, Any], expected: str) -> None:
    with pytest.raises(ablate.ConfigError) as info:
        ablate.validate(TINY, overrides)
    assert str(info.value).startswith(expected) and "\n" not in str(info.value)


def test_unset_segment_is_left_out_of_the_config() -> None:
    resolved = ablate.validate({"segment": "tiny"})
    assert resolved["segment"]["masks"] == "pseudo" and resolved["segment"]["name"] == "tiny"
    assert ablate.validate({})["segment"] is None


def test_a_segmenter_whose_loss_is_nan_stops_the_trial(plugin_folder: Path, tmp_path: Path) -> None:
    (plugin_folder / "segment_test_nan.py").write_text(
        textwrap.dedent(
            '''
            import torch
            from ablate import SEGMENTERS

            @SEGMENTERS.register("nan_segmenter")
            class NanSegmenter(torch.nn.Module):
                """Logits that are NaN."""

                def __init__(self, num_classes):
                    super().__init__()
                    self.classifier = torch.nn.Conv2d(3, num_classes, 1)

                def forward(self, images):
                    return self.classifier(images) * float("nan")
            '''
        )
    )
    config = {**TINY, "plugins": ["segment_test_nan"], "segment": {"name": "nan_segmenter"}}
    with pytest.raises(ablate.Diverged, match=r"^segmenter diverged at epoch 1, step 1 \(loss nan\)$"):
        ablate.run_trial(config, cache=ablate.StageCache(tmp_path), progress=False)
    sys.modules.pop("segment_test_nan", None)
