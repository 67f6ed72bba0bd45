"""Plot helpers whose numbers matter: the groups of the critical-difference diagram, the chance-level line."""

from __future__ import annotations

import numpy as np
import pytest

from ablate._report._analysis import configurations
from ablate._report._model import prepare
from ablate._report._paper import _lambda_table
from ablate._report._plots import configurations_figure, heatmap_figures
from ablate._report._ranks import cd_groups
from ablate._results import trials_frame
from ablate.study import Distribution


def _pairwise(ranks: np.ndarray, cd: float) -> list[tuple[int, int]]:
    """The definition, pair by pair: maximal runs of ascending ranks spread below cd."""
    k = len(ranks)
    return [
        (start, end)
        for start in range(k)
        for end in range(start + 1, k)
        if ranks[end] - ranks[start] < cd
        and (start == 0 or ranks[end] - ranks[start - 1] >= cd)
        and (end == k - 1 or ranks[end + 1] - ranks[start] >= cd)
    ]


def test_groups_by_hand() -> None:
    ranks = np.array([1.0, 1.5, 1.9, 3.0, 3.2, 5.0])
    # cd 1.0: 1.0-1.9 and 3.0-3.2 (1.9 and 3.0 are 1.1 apart); 5.0 alone
    assert cd_groups(ranks, 1.0) == [(0, 2), (3, 4)]
    # cd 1.2: 1.9-3.0 joins too, but 1.9-3.2 (1.3) does not
    assert cd_groups(ranks, 1.2) == [(0, 2), (2, 3), (3, 4)]
    assert cd_groups(ranks, 0.1) == []


@pytest.mark.parametrize("seed", range(5))
def test_groups_match_the_pairwise_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ranks = np.sort(rng.uniform(1, 30, size=40))
    for cd in (0.5, 2.0, 7.5):
        assert cd_groups(ranks, cd) == _pairwise(ranks, cd)


def test_configurations_figure_draws_the_chance_level(synthetic, tmp_path) -> None:
    study = synthetic.study(tmp_path, {"transfer.lambda": [0.5, 1.0]}, seeds=2)
    specs = [
        synthetic.Spec({"transfer.lambda": lam}, seed, metrics={"smoke_iou": lam / 2, "all_smoke_iou": 0.15})
        for lam in (0.5, 1.0)
        for seed in range(2)
    ]
    data = prepare(trials_frame(synthetic.stored(study, specs, tmp_path, artifacts=False)), study, tmp_path)
    plot = configurations_figure(data, configurations(data))
    caption = " ".join(plot.figure.texts[-1].get_text().split())
    assert "Dashed line: all_smoke_iou 0.1500, Smoke IoU of a mask that marks every pixel smoke: the chance" in caption
    dashed = [line for ax in plot.figure.axes for line in ax.lines if line.get_linestyle() == "--"]
    assert [list(line.get_xdata()) for line in dashed] == [[0.15, 0.15]]


def _tuned(synthetic, tmp_path, tune: list[Distribution], params: list[dict]):
    study = synthetic.study(tmp_path, None, seeds=1, tune=tune, n_trials=len(params))
    specs = [synthetic.Spec(p, 0, metrics={"smoke_iou": 0.1 + 0.01 * i}) for i, p in enumerate(params)]
    return prepare(trials_frame(synthetic.stored(study, specs, tmp_path, artifacts=False)), study, tmp_path)


def test_a_continuous_tuned_axis_is_never_a_heat_map_or_a_lambda_table_of_its_samples(synthetic, tmp_path) -> None:
    # 8 sampled lambdas (under the 12 levels of a discrete axis) were drawn as a heat map of one-off values
    rng = np.random.default_rng(0)
    tune = [Distribution("transfer.lambda", "float", 0.1, 2.0), Distribution("train.epochs", "int", 1, 3)]
    params = [{"transfer.lambda": float(rng.uniform(0.1, 2.0)), "train.epochs": 1 + i % 3} for i in range(8)]
    data = _tuned(synthetic, tmp_path, tune, params)
    assert [(a.path, a.discrete) for a in data.axes] == [("transfer.lambda", False), ("train.epochs", True)]
    assert heatmap_figures(data) == []
    assert _lambda_table(data) is None


def test_tuned_levels_get_a_heat_map_only_where_they_were_crossed(synthetic, tmp_path) -> None:
    tune = [Distribution("train.epochs", "int", 1, 3), Distribution("cam.name", "categorical", choices=("a", "b"))]
    scattered = [{"train.epochs": 1, "cam.name": "a"}, {"train.epochs": 2, "cam.name": "b"}]
    assert heatmap_figures(_tuned(synthetic, tmp_path, tune, scattered)) == []
    crossed = [{"train.epochs": e, "cam.name": c} for e in (1, 2) for c in ("a", "b")]
    assert len(heatmap_figures(_tuned(synthetic, tmp_path, tune, crossed))) == 1


def test_a_log_scaled_tuned_axis_has_plain_tick_labels(synthetic, tmp_path) -> None:
    import matplotlib

    from ablate._report._pdf import STYLE
    from ablate._report._plots import axis_figure

    tune = [Distribution("train.lr", "float", 3e-4, 3e-3, log=True)]
    data = _tuned(synthetic, tmp_path, tune, [{"train.lr": lr} for lr in (3e-4, 6e-4, 1e-3, 2e-3, 3e-3)])
    with matplotlib.rc_context(STYLE):
        plot = axis_figure(data, data.axes[0])
        plot.figure.canvas.draw()
        (ax,) = plot.figure.axes
        labels = [t.get_text() for t in ax.get_xticklabels(minor=False) + ax.get_xticklabels(minor=True)]
    # matplotlib's math-text labels ($\mathdefault{10^{-3}}$) printed as they are with the report's style
    assert "1e−03" in labels and not any("$" in label for label in labels)


def test_a_long_label_in_the_critical_difference_diagram_keeps_its_baseline_mark(synthetic, tmp_path) -> None:
    from ablate._report._ranks import critical_difference_figure

    values = [
        {"name": "single", "network": "teacher", "pretrain": None},
        {"name": "single", "network": "student", "pretrain": None},
        {"name": "single", "network": "student", "pretrain": "fractaldb"},
    ]
    baseline = {"paradigm": values[1]}
    study = synthetic.study(tmp_path, {"paradigm": values}, seeds=2, baseline=baseline)
    rng = np.random.default_rng(0)
    specs = [  # two seeds: the diagram ranks seeds
        synthetic.Spec({"paradigm": v}, seed, metrics={"smoke_iou": float(rng.uniform(0, 1))})
        for v in values
        for seed in range(2)
    ]
    data = prepare(trials_frame(synthetic.stored(study, specs, tmp_path, artifacts=False)), study, tmp_path)
    figure = critical_difference_figure(data, configurations(data)).figure
    labels = [" ".join(t.get_text().split()) for t in figure.axes[0].texts if "(" in t.get_text()]
    # a one-line label cut at 40 characters lost it: "paradigm=single(network=student,…"
    assert sum("(baseline)" in label for label in labels) == 1
