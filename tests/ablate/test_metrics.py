"""Shared metric helpers: pixel counts, per-image IoU, the threshold sweep, evaluation by name."""

from __future__ import annotations

import numpy as np
import pytest

import ablate.components.metrics.all_smoke_iou  # noqa: F401  (registers the metric)
import ablate.components.metrics.false_activation  # noqa: F401
import ablate.components.metrics.smoke_iou  # noqa: F401
import ablate.pipeline._metrics as metrics
from ablate import Evaluation, RegistryError
from ablate.pipeline._metrics import (
    ORACLE_THRESHOLDS,
    chance_metric,
    confusion_matrix,
    evaluate,
    iou_at_thresholds,
    lower_is_better,
    mean_defined,
    per_image_iou,
    ratio,
)

pytestmark = pytest.mark.filterwarnings("error")  # NaN paths must not warn

# Image 0: smoke partly found; image 1: smoke missed entirely; image 2: smoke-free with a false activation.
PRED = np.array(
    [
        [[1, 1, 0], [0, 0, 0]],
        [[0, 0, 0], [0, 0, 0]],
        [[0, 0, 1], [0, 0, 0]],
    ],
    dtype=bool,
)
GT = np.array(
    [
        [[1, 0, 0], [1, 0, 0]],
        [[0, 0, 0], [0, 1, 1]],
        [[0, 0, 0], [0, 0, 0]],
    ],
    dtype=np.uint8,
)


def test_confusion_matrix_rows_are_ground_truth() -> None:
    # TP=1 (img0), FP=1 (img0) + 1 (img2), FN=1 (img0) + 2 (img1), TN=18-1-2-3=12
    assert confusion_matrix(PRED, GT).tolist() == [[12, 2], [3, 1]]


def test_confusion_matrix_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(PRED, GT[:2])


def test_per_image_iou_edge_cases() -> None:
    # img0: 1 / (1+1+1); img1: empty prediction on smoke -> 0; img2: no gt smoke -> NaN despite a false activation
    np.testing.assert_array_equal(per_image_iou(PRED, GT), [1 / 3, 0.0, np.nan])


def test_per_image_iou_empty_prediction_and_gt_is_undefined() -> None:
    empty = np.zeros((1, 2, 3), dtype=bool)
    assert np.isnan(per_image_iou(empty, empty.astype(np.uint8))).all()


def test_ratio_and_mean_defined_are_nan_when_undefined() -> None:
    assert ratio(3, 4) == 3 / 4
    assert np.isnan(ratio(0, 0))
    assert mean_defined(np.array([1.0, np.nan, 0.5])) == 3 / 4
    assert np.isnan(mean_defined(np.array([np.nan, np.nan])))
    assert np.isnan(mean_defined(np.array([])))


def test_oracle_thresholds_grid() -> None:
    assert len(ORACLE_THRESHOLDS) == 21
    assert ORACLE_THRESHOLDS[0] == 0.0 and ORACLE_THRESHOLDS[-1] == 1.0
    assert ORACLE_THRESHOLDS[6] == 0.3  # exact, so the paper's fixed threshold is on the grid


@pytest.mark.parametrize("chunk_pixels", [1, 12, 1 << 22])  # one image per chunk, two per chunk, all at once
def test_iou_at_thresholds_matches_thresholding_each_map(monkeypatch: pytest.MonkeyPatch, chunk_pixels: int) -> None:
    monkeypatch.setattr(metrics, "_CHUNK_PIXELS", chunk_pixels)
    rng = np.random.default_rng(0)
    cams = rng.random((5, 2, 3)).astype(np.float32)
    cams[0, 0, 0], cams[1, 1, 1] = 0.0, 1.0  # values on the grid ends
    gt = (rng.random((5, 2, 3)) < 0.5).astype(np.uint8)
    gt[3] = 0  # a smoke-free image
    expected = np.stack([per_image_iou(cams >= t, gt) for t in ORACLE_THRESHOLDS], axis=1)
    np.testing.assert_allclose(iou_at_thresholds(cams, gt), expected)
    assert np.isnan(iou_at_thresholds(cams, gt)[3]).all()


def test_iou_at_thresholds_includes_pixels_equal_to_the_threshold() -> None:
    cams = np.array([[[0.5, 0.25]]])
    gt = np.array([[[1, 0]]], dtype=np.uint8)
    # t=0.25: both pixels -> 1/2; t=0.5: only the smoke pixel -> 1; t=0.75: none -> 0
    np.testing.assert_array_equal(iou_at_thresholds(cams, gt, np.array([0.25, 0.5, 0.75])), [[1 / 2, 1.0, 0.0]])


def test_iou_at_thresholds_rejects_unsorted_thresholds() -> None:
    with pytest.raises(ValueError, match="ascending"):
        iou_at_thresholds(PRED.astype(float), GT, np.array([0.5, 0.2]))


def _evaluation() -> Evaluation:
    return Evaluation(
        cams=PRED.astype(np.float32),
        pred=PRED,
        masks=GT,
        labels=np.array([1, 1, 0]),
        smoke_prob=np.array([0.9, 0.2, 0.1]),
    )


def test_evaluate_returns_floats_by_name() -> None:
    result = evaluate(_evaluation(), ["smoke_iou", "false_activation"])
    # smoke_iou: (1/3 + 0) / 2; false_activation: 1 of the 6 pixels of img2
    assert result == {"smoke_iou": 1 / 6, "false_activation": 1 / 6}
    assert all(type(v) is float for v in result.values())


def test_evaluate_fails_on_unknown_name_with_suggestion() -> None:
    with pytest.raises(RegistryError, match="smoke_iou"):
        evaluate(_evaluation(), ["smoke_iuo"])


def test_lower_is_better() -> None:
    assert lower_is_better("false_activation")
    assert not lower_is_better("smoke_iou")
    with pytest.raises(RegistryError):
        lower_is_better("no_such_metric")


def test_chance_metric_is_of_the_same_stage() -> None:
    assert chance_metric("smoke_iou") == "all_smoke_iou"
    assert chance_metric("oracle_smoke_iou") == "all_smoke_iou"  # threshold 0 marks every pixel: never below it
    assert chance_metric("seg_smoke_iou") == "seg_all_smoke_iou"
    assert chance_metric("miou") is None and chance_metric("no_such_metric") is None and chance_metric(None) is None
