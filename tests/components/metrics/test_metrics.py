"""Every built-in metric against numbers computed by hand on a 3-image, 2x3-pixel split."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ablate import METRICS, Evaluation, load_components
from ablate.pipeline._metrics import ORACLE_THRESHOLDS, evaluate, iou_at_thresholds, lower_is_better

pytestmark = pytest.mark.filterwarnings("error")  # NaN paths must not warn

load_components()


def _split() -> Evaluation:
    """Images 0 and 1 contain smoke, image 2 is smoke-free; ``cams`` only feed the oracle."""
    return Evaluation(
        cams=np.array(
            [
                # gt smoke at .33 .31 .38, background at .12 .02 .22: t in {0.25, 0.30} is perfect
                [[0.33, 0.31, 0.12], [0.38, 0.02, 0.22]],
                # background .62 .72, smoke .93 .18 .97 .91 (computed in test_oracle_*)
                [[0.62, 0.93, 0.18], [0.72, 0.97, 0.91]],
                [[0.50, 0.50, 0.50], [0.50, 0.50, 0.50]],
            ],
            dtype=np.float32,
        ),
        pred=np.array(
            [
                [[1, 1, 1], [0, 0, 0]],
                [[0, 0, 1], [0, 1, 1]],
                [[1, 1, 0], [0, 0, 0]],
            ],
            dtype=bool,
        ),
        masks=np.array(
            [
                [[1, 1, 0], [1, 0, 0]],
                [[0, 1, 1], [0, 1, 1]],
                [[0, 0, 0], [0, 0, 0]],
            ],
            dtype=np.uint8,
        ),
        labels=np.array([1, 1, 0]),
        smoke_prob=np.array([0.9, 0.4, 0.5]),
        cooccur_masks=np.array(
            [
                [[0, 0, 1], [0, 0, 1]],
                [[0, 0, 1], [0, 0, 0]],  # under gt smoke (and predicted): not counted
                [[1, 0, 0], [1, 0, 0]],
            ],
            dtype=np.uint8,
        ),
        val_labels=np.array([1, 0, 0, 1]),
        val_smoke_prob=np.array([0.7, 0.2, 0.6, 0.5]),
    )


# Per image (TP, FP, FN): img0 (2, 1, 1), img1 (3, 0, 1), img2 (0, 2, 0); of 18 pixels TP=5 FP=3 FN=2 TN=8.
EXPECTED = {
    "smoke_iou": (2 / 4 + 3 / 4) / 2,  # img0 2/(2+1+1), img1 3/(3+0+1); img2 not scored
    "miou": (8 / 13 + 5 / 10) / 2,  # background TN/(TN+FP+FN)=8/13, smoke TP/(TP+FP+FN)=5/10
    "precision": 5 / 8,  # TP=5 FP=3
    "recall": 5 / 7,  # TP=5 FN=2
    "f1": 10 / 15,  # 2TP / (2TP + FP + FN)
    "false_activation": 2 / 6,  # img2: 2 of 6 pixels
    "chimney_claimed": 2 / 4,  # chimney outside smoke: img0 (0,2) yes (1,2) no, img2 (0,0) yes (1,0) no
    "chimney_per_tp": 2 / 5,  # 2 claimed chimney pixels / TP=5
    "oracle_smoke_iou": (1 + 3 / 4) / 2,  # img0 1 at t=0.25, img1 3/4 at t=0.75 (see test below)
    "accuracy": 1 / 3,  # smoke_prob >= 0.5 -> [1, 0, 1] vs labels [1, 1, 0]: only img0 right
    "val_accuracy": 3 / 4,  # val smoke_prob >= 0.5 -> [1, 0, 1, 1] vs [1, 0, 0, 1]
    "accuracy_gap": 3 / 4 - 1 / 3,
    "chimney_only_fpr": 1 / 1,  # img2 is the only smoke-free image with a chimney; prob 0.5 -> smoke
    "all_smoke_iou": (3 / 6 + 4 / 6) / 2,  # every pixel smoke: img0 3 of 6 pixels are smoke, img1 4 of 6
    # point-biserial form of Pearson's r: (smoke mean - background mean) / population std * sqrt(p * q); img0: smoke
    # .33 .31 .38 (mean .34), background .12 .02 .22 (mean .12), p = q = 1/2; img1: smoke .93 .18 .97 .91, background
    # .62 .72, p = 4/6; img2 has no smoke
    "smoke_cam_correlation": (
        (0.34 - 0.12) / np.std([0.33, 0.31, 0.12, 0.38, 0.02, 0.22]) * 0.5
        + ((0.93 + 0.18 + 0.97 + 0.91) / 4 - (0.62 + 0.72) / 2)
        / np.std([0.62, 0.93, 0.18, 0.72, 0.97, 0.91])
        * np.sqrt(4 / 6 * 2 / 6)
    )
    / 2,
}


def test_every_builtin_metric_is_covered() -> None:
    assert set(EXPECTED) <= set(METRICS.names())
    assert {m for m in METRICS.names() if METRICS.get(m).module.startswith("ablate.components.metrics.")} == set(
        EXPECTED
    )


@pytest.mark.parametrize("name", EXPECTED)
def test_metric_matches_hand_computation(name: str) -> None:
    assert evaluate(_split(), [name])[name] == pytest.approx(EXPECTED[name])


@pytest.mark.parametrize("name", EXPECTED)
def test_metric_has_one_line_description(name: str) -> None:
    assert METRICS.get(name).description


def test_direction() -> None:
    lower = {"false_activation", "chimney_claimed", "chimney_per_tp", "chimney_only_fpr", "accuracy_gap"}
    assert {name for name in EXPECTED if lower_is_better(name)} == lower


def test_oracle_picks_a_different_threshold_per_image() -> None:
    ev = _split()
    ious = iou_at_thresholds(ev.cams, ev.masks)
    best = ORACLE_THRESHOLDS[np.nanargmax(ious[:2], axis=1)]
    # img0: t=0.25 and t=0.30 separate smoke (>=.31) from background (<=.22) -> IoU 1, first at 0.25.
    # img1: t<=0.15 all 6 pixels -> 4/6; 0.20..0.60 drops .18 (smoke) -> 3/6; 0.65,0.70 keep .72 -> 3/5;
    #       0.75..0.90 exactly .93 .97 .91 -> 3/4; 0.95 -> 1/4; 1.00 -> 0.
    np.testing.assert_array_equal(best, [0.25, 0.75])
    assert ious[0].max() == 1.0 and ious[1].max() == 3 / 4
    assert ious[1, 6] == 3 / 6  # the paper's fixed 0.3 on img1, below the oracle's 3/4
    assert np.isnan(ious[2]).all()


def test_oracle_names_are_marked() -> None:
    assert [m for m in EXPECTED if m.startswith("oracle_")] == ["oracle_smoke_iou"]


def test_an_inverted_cam_correlates_negatively_and_a_flat_one_is_left_out() -> None:
    ev = _split()
    inverted = dataclasses.replace(ev, cams=1 - ev.cams)
    correlation = evaluate(ev, ["smoke_cam_correlation"])["smoke_cam_correlation"]
    assert evaluate(inverted, ["smoke_cam_correlation"])["smoke_cam_correlation"] == pytest.approx(-correlation)
    ev.cams[1] = 0.5  # no correlation on img1: img0's alone
    assert evaluate(ev, ["smoke_cam_correlation"])["smoke_cam_correlation"] == pytest.approx(
        (0.34 - 0.12) / np.std([0.33, 0.31, 0.12, 0.38, 0.02, 0.22]) * 0.5
    )
    ev.cams[0] = 0.5
    assert _nan(ev, "smoke_cam_correlation")


def test_chimney_pixels_under_smoke_are_excluded() -> None:
    ev = _split()
    ev.cooccur_masks[0] = 0
    # left: img1 (0,2) is under smoke, img2 (0,0) claimed (1,0) not -> 1/2; counting img1's would give 2/3
    assert evaluate(ev, ["chimney_claimed"])["chimney_claimed"] == 1 / 2


def _nan(ev: Evaluation, name: str) -> bool:
    return bool(np.isnan(evaluate(ev, [name])[name]))


@pytest.mark.parametrize("name", ["smoke_iou", "oracle_smoke_iou", "recall"])
def test_undefined_without_smoke_images(name: str) -> None:
    ev = _split()
    only_free = dataclasses.replace(
        ev,
        cams=ev.cams[2:],
        pred=ev.pred[2:],
        masks=ev.masks[2:],
        labels=ev.labels[2:],
        smoke_prob=ev.smoke_prob[2:],
        cooccur_masks=None,
    )
    assert _nan(only_free, name)


@pytest.mark.parametrize("name", ["val_accuracy", "accuracy_gap"])
def test_val_metrics_undefined_without_a_val_split(name: str) -> None:
    assert _nan(dataclasses.replace(_split(), val_labels=None, val_smoke_prob=None), name)


def test_chimney_only_fpr_counts_smoke_free_images_with_a_chimney() -> None:
    ev = _split()
    assert evaluate(dataclasses.replace(ev, smoke_prob=np.array([0.9, 0.9, 0.49])), ["chimney_only_fpr"]) == {
        "chimney_only_fpr": 0.0
    }
    ev.cooccur_masks[2] = 0  # no smoke-free image shows a chimney: undefined
    assert _nan(ev, "chimney_only_fpr")


@pytest.mark.parametrize("name", ["chimney_claimed", "chimney_per_tp", "chimney_only_fpr"])
def test_chimney_metrics_undefined_without_cooccurrence_masks(name: str) -> None:
    assert _nan(dataclasses.replace(_split(), cooccur_masks=None), name)


def test_false_activation_undefined_without_smoke_free_images() -> None:
    assert _nan(dataclasses.replace(_split(), labels=np.array([1, 1, 1])), "false_activation")


def test_undefined_without_predicted_smoke() -> None:
    ev = _split()
    ev.pred[:] = False
    assert _nan(ev, "precision") and _nan(ev, "chimney_per_tp")  # no TP, no FP
    assert evaluate(ev, ["f1", "recall", "smoke_iou"]) == {"f1": 0.0, "recall": 0.0, "smoke_iou": 0.0}


def test_miou_skips_a_class_absent_everywhere() -> None:
    ev = _split()
    ev.pred[:], ev.masks[:] = False, 0
    assert evaluate(ev, ["miou"])["miou"] == 1.0  # only background, all correct
