"""Numbers in the report tables against the stored trials and scipy called directly."""

import dataclasses
import math

import numpy as np
import pytest
from optuna.trial import TrialState
from scipy import stats

from ablate._report._analysis import configurations, friedman, marginal
from ablate._report._format import to_latex, to_markdown
from ablate._report._model import chance_level, prepare, value_label
from ablate._report._tables import build_tables
from ablate._results import trials_frame
from ablate.stats import detectable_difference, holm, seeds_needed
from ablate.study import Objective

IOU_A = [0.2, 0.4, 0.6]  # smoke_iou of configuration lambda=0.5 for seeds 0, 1, 2
IOU_B = [0.3, 0.35, 0.5]  # the baseline, lambda=1.0
IMAGES_A = [[0.1, None, 0.3, 0.5], [0.2, 0.4, None, 0.6], [0.6, 0.6, 0.6, 0.6]]
IMAGES_B = [[0.2, 0.2, 0.1, 0.4], [0.1, 0.5, 0.3, 0.4], [0.5, 0.6, 0.7, 0.3]]


def _metrics(iou: float) -> dict[str, float]:
    return {"smoke_iou": iou, "chimney_claimed": 1 - iou, "false_activation": 0.1}


def _prepared(synthetic, tmp_path, specs, **study):
    study = synthetic.study(tmp_path, {"transfer.lambda": [0.5, 1.0]}, seeds=3, **study)
    stored = synthetic.stored(study, specs, tmp_path, artifacts=False)
    return prepare(trials_frame(stored), study, tmp_path)


@pytest.fixture
def known(synthetic, tmp_path):
    """Two configurations x three seeds with hand-picked numbers; lambda=1.0 is the baseline."""
    specs = [
        synthetic.Spec({"transfer.lambda": lam}, seed, metrics=_metrics(ious[seed]), per_image=images[seed])
        for lam, ious, images in ((0.5, IOU_A, IMAGES_A), (1.0, IOU_B, IMAGES_B))
        for seed in range(3)
    ]
    return _prepared(synthetic, tmp_path, specs, baseline={"transfer.lambda": 1.0})


def test_summary_matches_the_stored_trials(known):
    summary = configurations(known).set_index("configuration")
    row = summary.loc["lambda=0.5"]
    assert row["smoke_iou.mean"] == pytest.approx(np.mean(IOU_A))
    assert row["smoke_iou.std"] == pytest.approx(np.std(IOU_A, ddof=1))
    half = stats.t.ppf(0.975, 2) * np.std(IOU_A, ddof=1) / math.sqrt(3)
    assert row["smoke_iou.ci_high"] == pytest.approx(np.mean(IOU_A) + half)
    assert row["smoke_iou.n"] == 3 and row["seeds"] == 3
    assert row["chimney_claimed.mean"] == pytest.approx(1 - np.mean(IOU_A))
    assert list(summary["rank"]) == [1, 2]  # 0.4 beats 0.383 when maximizing
    assert summary.loc["lambda=1 (baseline)", "baseline"]


def test_ranking_follows_the_objective_direction(synthetic, tmp_path):
    specs = [
        synthetic.Spec({"transfer.lambda": lam}, 0, metrics=_metrics(0.5) | {"false_activation": fa})
        for lam, fa in ((0.5, 0.3), (1.0, 0.1))
    ]
    data = _prepared(synthetic, tmp_path, specs, objectives=[Objective("false_activation", "minimize")])
    assert list(configurations(data)["configuration"]) == ["lambda=1", "lambda=0.5"]


def test_baseline_comparison_p_values_match_scipy(known):
    summary = configurations(known)
    table = next(t for t in build_tables(known, summary) if t.name == "baseline").data.iloc[0]
    assert table["configuration"] == "lambda=0.5"
    assert table["delta"] == pytest.approx(np.mean(IOU_A) - np.mean(IOU_B))
    assert table["seed_test"] == "paired t"
    assert table["p_seeds"] == pytest.approx(stats.ttest_rel(IOU_A, IOU_B).pvalue)
    assert "p_images" not in table  # per-image tests are no verdict: they have their own table
    images = next(t for t in build_tables(known, summary) if t.name == "baseline-images").data.iloc[0]
    a = np.array(IMAGES_A, dtype=float).ravel()
    b = np.array(IMAGES_B, dtype=float).ravel()
    keep = np.isfinite(a) & np.isfinite(b)  # images pair by index within each seed; NaN (no smoke) dropped
    assert images["image_pairs"] == keep.sum() == 10
    assert images["delta_image_iou"] == pytest.approx(np.mean(a[keep] - b[keep]))
    assert images["p_images"] == pytest.approx(stats.wilcoxon(a[keep], b[keep]).pvalue)
    std = np.std(np.subtract(IOU_A, IOU_B), ddof=1)
    assert table["detectable"] == pytest.approx(detectable_difference(std, 3))
    assert table["seeds_for_half"] == seeds_needed(table["detectable"] / 2, std)


def test_a_baseline_without_a_completed_trial_leaves_its_comparisons_empty(synthetic, tmp_path):
    """A study whose baseline configuration failed in every seed still gets its tables (this raised a KeyError)."""
    specs = [synthetic.Spec({"transfer.lambda": 0.5}, seed, metrics=_metrics(IOU_A[seed])) for seed in range(3)]
    specs += [
        synthetic.Spec({"transfer.lambda": 1.0}, seed, state=TrialState.FAIL, error="diverged") for seed in range(3)
    ]
    data = _prepared(synthetic, tmp_path, specs, baseline={"transfer.lambda": 1.0})
    row = next(t for t in build_tables(data, configurations(data)) if t.name == "baseline").data.iloc[0]
    assert row["configuration"] == "lambda=0.5" and row["seed_pairs"] == 0
    assert math.isnan(row["delta"]) and math.isnan(row["p_seeds"])


def test_marginal_pools_the_other_axes(synthetic, tmp_path):
    grid = {"transfer.lambda": [0.5, 1.0], "transfer.level": ["global", "spatial"]}
    effect = {(0.5, "global"): 0.2, (0.5, "spatial"): 0.4, (1.0, "global"): 0.5, (1.0, "spatial"): 0.7}
    rng = np.random.default_rng(0)
    specs = synthetic.grid(grid, 2, lambda p: effect[p["transfer.lambda"], p["transfer.level"]], rng)
    study = synthetic.study(tmp_path, grid, seeds=2)
    data = prepare(trials_frame(synthetic.stored(study, specs, tmp_path, artifacts=False)), study, tmp_path)
    level = next(a for a in data.axes if a.path == "transfer.level")
    table = marginal(data, level).set_index("level")
    for value in ("global", "spatial"):
        seed_means = [
            np.mean([s.metrics["smoke_iou"] for s in specs if s.params["transfer.level"] == value and s.seed == seed])
            for seed in range(2)
        ]
        assert table.loc[value, "smoke_iou.mean"] == pytest.approx(np.mean(seed_means))
        # a seed counts once: the std is over the seeds' means over lambda, not over the four trials
        assert table.loc[value, "smoke_iou.std"] == pytest.approx(np.std(seed_means, ddof=1))
        assert table.loc[value, "smoke_iou.n"] == 2
        assert table.loc[value, "trials"] == 4 and table.loc[value, "configurations"] == 2
    names = [t.name for t in build_tables(data, configurations(data))]
    assert {"marginal-lambda", "marginal-level", "paper-lambda", "paper-transfer"} <= set(names)


def test_paper_layouts_and_oracle_labels(synthetic, tmp_path):
    chains = [[], [{"name": "crf", "sxy": 3}, {"name": "sam"}], [{"name": "oracle_threshold"}]]
    grid = {"postprocess": chains}
    rng = np.random.default_rng(0)
    specs = synthetic.grid(grid, 2, lambda p: 0.3 + 0.1 * len(p["postprocess"]), rng)
    for spec in specs:
        spec.oracle = spec.params["postprocess"] == chains[2]
    study = synthetic.study(tmp_path, grid, seeds=2, baseline={"postprocess": []})
    data = prepare(trials_frame(synthetic.stored(study, specs, tmp_path, artifacts=False)), study, tmp_path)
    tables = {t.name: t for t in build_tables(data, configurations(data))}
    post = tables["paper-postprocess"]
    assert list(post.shown["post-processing"]) == ["none", "CRF(sxy=3) + SAM", "oracle threshold [oracle]"]
    assert list(post.data["paper_best_seed"]) == [0.4625, 0.5293, 0.5715]  # matched by step names
    seed1 = [s.metrics["smoke_iou"] for s in specs if s.seed == 1]
    assert list(post.data["seed 1"]) == pytest.approx(seed1)
    summary = tables["summary"].shown["configuration"]
    assert summary.str.contains("oracle").sum() == 1
    assert any("[oracle]" in c for c in tables["baseline"].shown["configuration"])


def test_paper_layouts_without_a_reference_have_no_paper_column(synthetic, tmp_path):
    grid = {"postprocess": [[], [{"name": "crf"}]]}
    specs = synthetic.grid(grid, 2, lambda p: 0.3 + 0.1 * len(p["postprocess"]), np.random.default_rng(0))
    study = synthetic.study(tmp_path, grid, seeds=2, reference=None)
    data = prepare(trials_frame(synthetic.stored(study, specs, tmp_path, artifacts=False)), study, tmp_path)
    post = {t.name: t for t in build_tables(data, configurations(data))}["paper-postprocess"]
    assert "paper best seed" not in post.shown and "paper_best_seed" not in post.data
    assert "published number" not in post.note


def test_value_labels():
    assert value_label('[{"name": "crf", "sxy": 3}, {"name": "multiscale"}]') == "CRF(sxy=3) + multi-scale"
    assert value_label("[]") == "none"
    assert value_label('{"name": "l2"}') == "L2"
    assert value_label(0.30000000001) == "0.3"
    assert value_label(float("nan")) == "(base)"


def test_markdown_and_latex_hold_every_row(known):
    table = build_tables(known, configurations(known))[0]
    markdown, latex = to_markdown(table), to_latex(table)
    assert markdown.count("\n| ") == 1 + len(table.shown)  # header + rows
    assert "lambda=1 (baseline)" in markdown
    assert r"\begin{tabular}" in latex and r"smoke\_iou" in latex and latex.count(r" \\") == 1 + len(table.shown)


def test_every_configuration_of_a_union_grid_is_compared_with_the_baseline(synthetic, tmp_path):
    """The lambda study's shape: lambdas in one grid, the single-network baselines in another."""
    student = {"name": "single", "network": "student"}
    teacher = {"name": "single", "network": "teacher"}
    grid = [{"transfer.lambda": [0.5, 1.0]}, {"paradigm": [teacher, student]}]
    study = dataclasses.replace(synthetic.study(tmp_path, None, seeds=2, baseline={"paradigm": student}), grid=grid)
    specs = [
        synthetic.Spec(params, seed, metrics=_metrics(0.1 * (i + 1) + 0.01 * seed))
        for i, params in enumerate(
            [{"transfer.lambda": 0.5}, {"transfer.lambda": 1.0}, {"paradigm": teacher}, {"paradigm": student}]
        )
        for seed in range(2)
    ]
    data = prepare(trials_frame(synthetic.stored(study, specs, tmp_path, artifacts=False)), study, tmp_path)
    compared = next(t for t in build_tables(data, configurations(data)) if t.name == "baseline")
    assert len(compared.data) == 3  # both lambdas and the teacher alone
    assert compared.shown["baseline"].nunique() == 1  # the table names the student-alone baseline on every row
    # lambda 0.5 (0.1, 0.11) against the student alone (0.4, 0.41): -0.3 over both seeds
    row = compared.data.set_index("configuration").loc["lambda=0.5"]
    assert row["delta"] == pytest.approx(-0.3)
    np.testing.assert_allclose(compared.data["p_seeds_holm"], holm(compared.data["p_seeds"]))
    assert {"p Holm", "d_z"} <= set(compared.shown.columns) and "p Holm (images)" not in compared.shown.columns


def test_friedman_ranks_seeds_and_its_critical_difference_matches_scipy_and_demsar(synthetic, tmp_path):
    rng = np.random.default_rng(3)
    lambdas = [0.5, 1.0, 1.5]
    ious = {(lam, seed): float(rng.uniform(0, 1) + lam / 4) for lam in lambdas for seed in range(6)}
    specs = [
        synthetic.Spec({"transfer.lambda": lam}, seed, metrics=_metrics(ious[(lam, seed)]))
        for lam in lambdas
        for seed in range(6)
    ]
    specs[0] = synthetic.Spec({"transfer.lambda": 0.5}, 0, state=TrialState.FAIL, error="x")  # seed 0 is no block
    data = _prepared(synthetic, tmp_path, specs)
    test = friedman(data, configurations(data))
    blocks = np.array([[ious[(lam, s)] for lam in lambdas] for s in range(1, 6)])  # seeds, not test images
    assert test.blocks == len(blocks) == 5
    expected = stats.friedmanchisquare(*blocks.T)
    assert test.statistic == pytest.approx(expected.statistic) and test.p == pytest.approx(expected.pvalue)
    ranks = stats.rankdata(-blocks, axis=1).mean(axis=0)
    assert dict(test.ranks) == pytest.approx({f"lambda={lam:g}": r for lam, r in zip(lambdas, ranks, strict=True)})
    # Demsar (2006), table 5: q_0.05 = 2.343 for three classifiers; CD = q * sqrt(k (k + 1) / (6 N))
    assert test.critical_difference == pytest.approx(2.343 * math.sqrt(3 * 4 / (6 * 5)), rel=1e-3)
    assert list(test.ranks) == sorted(test.ranks)


def test_friedman_over_seeds_that_all_tie_finds_no_difference(synthetic, tmp_path):
    # three configurations with the same objective in every seed (none localises): scipy's statistic is 0 / 0
    specs = [
        synthetic.Spec({"transfer.lambda": lam}, seed, metrics=_metrics(0.0), per_image=[0.0] * 4)
        for lam in (0.5, 1.0, 1.5)
        for seed in range(2)
    ]
    data = _prepared(synthetic, tmp_path, specs)
    test = friedman(data, configurations(data))
    assert (test.statistic, test.p, test.blocks) == (0.0, 1.0, 2)
    assert list(test.ranks) == [2.0, 2.0, 2.0]


def test_figure_labels_stay_distinct_apart_from_their_marks():
    from ablate._report._model import short_labels

    both = ["paradigm=single(network=teacher)", "paradigm=single(network=student) (baseline)"]
    assert short_labels(both) == both  # elided, the two would read "paradigm=single(…)" with and without a mark
    chains = ["postprocess=CRF(sxy=3, srgb=5, compat=10) + SAM", "postprocess=none"]
    assert short_labels(chains) == ["postprocess=CRF(…) + SAM", "postprocess=none"]


def test_summary_shows_the_bootstrap_interval_of_smoke_iou(known):
    summary = configurations(known)
    table = next(t for t in build_tables(known, summary) if t.name == "summary")
    assert {"95% t-CI (seeds)", "95% CI (bootstrap)"} <= set(table.shown.columns)
    assert (summary["image_iou.boot_low"] >= 0).all() and (summary["image_iou.boot_high"] <= 1).all()


def _with_chance(synthetic, tmp_path, chance):
    """The ``known`` trials with ``all_smoke_iou`` stored as well: ``chance(lam, seed)`` its value."""
    specs = [
        synthetic.Spec(
            {"transfer.lambda": lam},
            seed,
            metrics={**_metrics(ious[seed]), "all_smoke_iou": chance(lam, seed)},
            per_image=images[seed],
        )
        for lam, ious, images in ((0.5, IOU_A, IMAGES_A), (1.0, IOU_B, IMAGES_B))
        for seed in range(3)
    ]
    data = _prepared(synthetic, tmp_path, specs)
    return data, {t.name: t for t in build_tables(data, configurations(data))}


def test_tables_count_the_rows_no_better_than_the_chance_level(synthetic, tmp_path):
    # lambda 0.5 averages 0.4, lambda 1.0 0.3833: a chance level of 0.39 has one row above and one below it
    data, tables = _with_chance(synthetic, tmp_path, lambda lam, seed: 0.39)
    assert chance_level(data, "smoke_iou") == ("all_smoke_iou", pytest.approx(0.39))
    for name in ("summary", "paper-lambda"):
        assert "Chance level: all_smoke_iou is 0.3900 on these test images" in tables[name].note
        assert "1 of 2 rows score no better." in tables[name].note


def test_no_chance_level_when_it_differs_between_trials(synthetic, tmp_path):
    # other test images per configuration (a study over datasets): one number would be wrong for some rows
    data, tables = _with_chance(synthetic, tmp_path, lambda lam, seed: 0.2 if lam == 0.5 else 0.3)
    assert chance_level(data, "smoke_iou") is None
    assert "Chance level" not in tables["summary"].note
    assert chance_level(data, "chimney_claimed") is None  # no registered metric is its chance level


def test_a_union_grid_marginal_pools_only_the_values_run_with_every_level(synthetic, tmp_path):
    """The transfer study's shape: distances at the global level, levels with the cosine distance. The global level
    pooled three distances (its mean was the L2 rows') against one for spatial and channel."""
    from ablate._report._plots import heatmap_figures

    grid = [
        {"transfer.distance": ["cosine", "l1", "l2"], "transfer.level": ["global"]},
        {"transfer.distance": ["cosine"], "transfer.level": ["spatial", "channel"]},
    ]
    study = dataclasses.replace(synthetic.study(tmp_path, None, seeds=2), grid=grid)
    score = {("cosine", "global"): 0.1, ("l1", "global"): 0.5, ("l2", "global"): 0.9}
    params = [{"transfer.distance": d, "transfer.level": level} for d in ("cosine", "l1", "l2") for level in ["global"]]
    params += [{"transfer.distance": "cosine", "transfer.level": level} for level in ("spatial", "channel")]
    specs = [
        synthetic.Spec(p, seed, metrics={"smoke_iou": score.get((p["transfer.distance"], p["transfer.level"]), 0.2)})
        for p in params
        for seed in range(2)
    ]
    data = prepare(trials_frame(synthetic.stored(study, specs, tmp_path, artifacts=False)), study, tmp_path)
    level = next(a for a in data.axes if a.path == "transfer.level")
    table = marginal(data, level).set_index("level")
    assert table.loc["global", "smoke_iou.mean"] == pytest.approx(0.1)  # cosine only, like spatial and channel
    assert table.loc["global", "configurations"] == 1
    distance = marginal(data, next(a for a in data.axes if a.path == "transfer.distance")).set_index("distance")
    assert distance["smoke_iou.mean"].tolist() == pytest.approx([0.1, 0.5, 0.9])  # all at the global level
    assert heatmap_figures(data) == []  # distance x level: only the cosine row is crossed, no 2 x 2 block


def test_a_paper_postprocess_table_over_paradigms_counts_each_seed_once(synthetic, tmp_path):
    """The segmentation study's shape: chains crossed with three paradigms over two seeds. The table pooled the six
    trials of a chain as six seeds, and its caption said so."""
    grid = {"postprocess": [[], [{"name": "crf"}]], "paradigm": ["teacher_student", "co_training", "single"]}
    score = {"teacher_student": 0.1, "co_training": 0.3, "single": 0.5}
    specs = [
        synthetic.Spec(p, seed, metrics={"smoke_iou": score[p["paradigm"]] + 0.1 * len(p["postprocess"]) + seed / 10})
        for p in ({"postprocess": c, "paradigm": m} for c in grid["postprocess"] for m in score)
        for seed in range(2)
    ]
    study = synthetic.study(tmp_path, grid, seeds=2, baseline={"postprocess": []})
    data = prepare(trials_frame(synthetic.stored(study, specs, tmp_path, artifacts=False)), study, tmp_path)
    post = {t.name: t for t in build_tables(data, configurations(data))}["paper-postprocess"]
    none = post.data.iloc[0]
    assert [none["seed 0"], none["seed 1"]] == pytest.approx([0.3, 0.4])  # each seed's mean over the paradigms
    assert none["smoke_iou.mean"] == pytest.approx(0.35)
    assert none["smoke_iou.std"] == pytest.approx(np.std([0.3, 0.4], ddof=1))
    assert none["smoke_iou.n"] == 2 and none["trials"] == 6
    assert "with 2 seeds" in post.note


def test_the_decisions_table_is_the_paired_t_interval_over_seeds_with_the_probability_of_improvement(known):
    from ablate._report._decisions import decisions, decisions_table

    decided = decisions(known, configurations(known))
    row = decided.iloc[0]
    diff = np.subtract(IOU_A, IOU_B)  # -0.1, +0.05, +0.1: paired by seed
    half = stats.t.ppf(0.975, 2) * np.std(diff, ddof=1) / math.sqrt(3)
    assert (row["configuration"], row["reference"], row["seeds"]) == ("lambda=0.5", "lambda=1 (baseline)", 3)
    assert row["delta"] == pytest.approx(diff.mean())
    assert (row["delta_low"], row["delta_high"]) == pytest.approx((diff.mean() - half, diff.mean() + half))
    assert row["verdict"] == "undecided"  # the interval holds 0
    assert row["p_improvement"] == pytest.approx(2 / 3)  # seeds 1 and 2 beat the baseline, seed 0 does not
    assert row["seeds_for_decision"] == seeds_needed(abs(diff.mean()), np.std(diff, ddof=1))
    shown = decisions_table(known, decided).shown
    assert list(shown.columns)[:4] == ["configuration", "reference", "verdict", "seeds"]


def test_a_step_on_random_weights_marks_its_rows_and_its_verdict(synthetic, tmp_path):
    """CLIP or SAM without a checkpoint (``studies/postprocess.yaml`` offline) ran untrained: every row with it says
    so, its verdict too, and the notes say what the mark means; an earlier trial's oracle flag still marks it."""
    from ablate._report._decisions import decisions, decisions_table

    chains = [[], [{"name": "sam"}], [{"name": "oracle_threshold"}]]
    marks = {0: (), 1: ("random weights",), 2: None}  # None: stored before marks were, with only the oracle flag
    specs = [
        synthetic.Spec(
            {"postprocess": chain},
            seed,
            metrics=_metrics(0.3 + 0.1 * i + seed / 100),
            oracle=i == 2,
            marks=marks[i],
        )
        for i, chain in enumerate(chains)
        for seed in range(3)
    ]
    study = synthetic.study(tmp_path, {"postprocess": chains}, seeds=3, baseline={"postprocess": []})
    data = prepare(trials_frame(synthetic.stored(study, specs, tmp_path, artifacts=False)), study, tmp_path)
    summary = configurations(data)
    labels = sorted(summary["configuration"])
    assert labels == [
        "postprocess=SAM [random weights]",
        "postprocess=none (baseline)",
        "postprocess=oracle threshold [oracle]",
    ]
    tables = {t.name: t for t in build_tables(data, summary)}
    assert "[random weights]: a post-processing step ran a model without trained weights" in tables["summary"].note
    shown = decisions_table(data, decisions(data, summary)).shown.set_index("configuration")
    assert shown.loc[labels[0], "verdict"] == "better [random weights]"
    assert shown.loc[labels[2], "verdict"] == "better [oracle]"


def test_a_minimised_objective_decides_in_its_own_direction(synthetic, tmp_path):
    from ablate._report._decisions import decisions

    specs = [
        synthetic.Spec({"transfer.lambda": lam}, seed, metrics=_metrics(0.5) | {"false_activation": fa + seed / 100})
        for lam, fa in ((0.5, 0.1), (1.0, 0.4))  # lambda 0.5 activates falsely far less: better
        for seed in range(3)
    ]
    objectives = [Objective("false_activation", "minimize")]
    data = _prepared(synthetic, tmp_path, specs, objectives=objectives, baseline={"transfer.lambda": 1.0})
    row = decisions(data, configurations(data)).iloc[0]
    assert row["verdict"] == "better" and row["delta"] == pytest.approx(-0.3)
    assert row["delta_high"] < 0 and row["p_improvement"] == 1.0
