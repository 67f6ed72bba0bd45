import numpy as np

from ablate import POSTPROCESSORS, PostState
from ablate.components.postprocessors.oracle_threshold import OracleThreshold, best_thresholds


def test_picks_the_best_threshold_per_image(fake_context):
    cams = np.array([[[0.1, 0.42, 0.9]]] * 3, dtype=np.float32)
    truth = np.array([[[0, 1, 1]], [[0, 0, 1]], [[0, 0, 0]]], dtype=np.uint8)
    state = PostState(images=np.zeros((3, 1, 3, 3), np.uint8), cams=cams)
    oracle = POSTPROCESSORS.create("oracle_threshold")
    out = oracle(state, fake_context(truth=truth))
    # every image reaches IoU 1, the last with an empty mask for its empty truth
    np.testing.assert_array_equal(out.mask, truth.astype(bool))
    assert out.cams is state.cams
    assert OracleThreshold.uses_ground_truth is True


def test_threshold_choice_and_ties_go_to_the_smallest_mask():
    grid = OracleThreshold().grid
    assert len(grid) == 21 and grid[0] == 0.0 and grid[-1] == 1.0
    cam = np.array([[0.1, 0.42, 0.9]], dtype=np.float32)
    # IoU 1 on (0.1, 0.42] -> 0.40; on (0.42, 0.9] -> 0.90; empty truth: any t > 0.9 -> 1.0
    truths = np.array([[[0, 1, 1]], [[0, 0, 1]], [[0, 0, 0]]])
    np.testing.assert_array_equal(best_thresholds(np.stack([cam] * 3), truths, grid), np.float32([0.4, 0.9, 1.0]))


def test_best_iou_wins_without_a_perfect_threshold():
    cam = np.array([[0.2, 0.5, 0.6, 0.7]], dtype=np.float32)
    truth = np.array([[0, 1, 1, 0]])
    # IoU: t <= 0.2 -> 2/4; (0.2, 0.5] -> 2/3; (0.5, 0.6] -> 1/3; above -> 0
    assert best_thresholds(cam[None], truth[None], OracleThreshold().grid) == np.float32(0.5)


def test_matches_a_direct_search_of_every_threshold():
    rng = np.random.default_rng(0)
    cams, truth = rng.random((20, 6, 6), dtype=np.float32), rng.random((20, 6, 6)) < 0.3
    truth[:3] = False  # images without smoke
    grid = OracleThreshold(step=0.1).grid
    expected = []
    for cam, gt in zip(cams, truth, strict=True):
        ious = [np.count_nonzero((cam >= t) & gt) / max(1, np.count_nonzero((cam >= t) | gt)) for t in grid]
        ious = ious if gt.any() else [float(not (cam >= t).any()) for t in grid]
        expected.append(grid[len(grid) - 1 - int(np.argmax(ious[::-1]))])
    np.testing.assert_array_equal(best_thresholds(cams, truth, grid), expected)
