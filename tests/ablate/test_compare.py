"""`ablate compare`: two studies' configurations against one reference over shared seeds."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ablate.cli import main

TINY = {
    "data": {"name": "synthetic-smoke", "n_train": 32, "n_val": 8, "n_test": 8},
    "train": {"epochs": 1, "batch_size": 16},
    "paradigm": {"name": "single"},
}


def _study(folder: Path, name: str, **search) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "config": TINY, "seeds": 2, **search}))
    assert main(["run", str(path), "--out", str(folder / name), "--quiet", "--no-report"]) == 0
    return path


def test_compare_puts_both_studies_against_the_first_ones_baseline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_cache, capsys: pytest.CaptureFixture[str]
) -> None:
    import ablate
    from ablate._compare import compare_studies

    monkeypatch.setenv("ABLATE_CACHE", str(shared_cache.root))
    a = _study(tmp_path, "a", grid={"train.lr": [1e-3, 2e-3]}, baseline={"train.lr": 1e-3})
    b = _study(tmp_path, "b", grid={"train.lr": [3e-3]})
    table = compare_studies([a, b], [tmp_path / "a", tmp_path / "b"])
    assert list(table["study"]) == ["a", "a", "b"]
    assert table.loc[0, "configuration"] == "train.lr=0.001 (reference)" and table["shared seeds"].tolist() == [2, 2, 2]
    frames = {s: ablate.load_results(tmp_path / f"{s}.yaml", out=tmp_path / s) for s in "ab"}
    ref = frames["a"][frames["a"]["train.lr"] == 1e-3].set_index("seed")["metric.smoke_iou"]
    other = frames["b"].set_index("seed")["metric.smoke_iou"]
    assert table.loc[2, "difference"] == pytest.approx((other - ref).mean())
    assert table.loc[2, "test"] == "paired t" and 0 <= table.loc[2, "p Holm"] <= 1
    # the decisions table's seed-level verdict: the paired 95% t-interval of two seeds, and the share of seeds won
    diff = (other - ref).to_numpy()
    half = 12.706 * diff.std(ddof=1) / 2**0.5  # t(0.975, 1) over sqrt(2)
    low, high = diff.mean() - half, diff.mean() + half
    assert table.loc[2, "verdict"] == ("better" if low > 0 else "worse" if high < 0 else "undecided")
    assert table.loc[2, "P(A > B)"] == pytest.approx(((diff > 0) + 0.5 * (diff == 0)).mean())
    assert table.loc[0, "verdict"] == ""  # the reference itself
    capsys.readouterr()
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    printed = capsys.readouterr().out
    assert "train.lr=0.001 (reference)" in printed and "smoke_iou" in printed


def test_compare_refuses_a_study_never_run_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    never = tmp_path / "never.yaml"
    never.write_text(yaml.safe_dump({"config": TINY}))
    assert main(["compare", str(never), str(never), "--out", str(tmp_path / "x"), str(tmp_path / "y")]) == 2
    assert "no study 'never'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()  # it left an empty study.db there


def test_compare_reads_each_study_from_its_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_cache, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ABLATE_CACHE", str(shared_cache.root))
    a = _study(tmp_path, "a", grid={"train.lr": [1e-3, 2e-3]})
    url = f"sqlite:///{tmp_path / 'a' / 'study.db'}"
    capsys.readouterr()
    assert main(["compare", str(a), "--storage", url, "--metric", "smoke_iou"]) == 0
    assert "(reference)" in capsys.readouterr().out
    assert main(["compare", str(a), "--storage", url, url]) == 2
    assert "--storage: give one per study (1), got 2" in capsys.readouterr().err


def test_without_a_baseline_the_reference_is_the_best_by_the_metrics_own_direction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_cache, capsys: pytest.CaptureFixture[str]
) -> None:
    # compare --metric false_activation took the highest (worst) configuration as reference
    import ablate
    from ablate._compare import compare_studies

    monkeypatch.setenv("ABLATE_CACHE", str(shared_cache.root))
    a = _study(tmp_path, "a", grid={"train.lr": [1e-3, 3e-2]})
    means = ablate.load_results(a, out=tmp_path / "a").groupby("train.lr")["metric.false_activation"].mean()
    assert means.nunique() == 2
    table = compare_studies([a], [tmp_path / "a"], metric="false_activation")
    assert table.loc[0, "configuration"] == f"train.lr={means.idxmin():g} (reference)"
    capsys.readouterr()
    assert main(["compare", str(a), "--out", str(tmp_path / "a"), "--metric", "smoke_iuo"]) == 2
    assert "--metric: 'smoke_iuo' is not in the metrics registry (did you mean 'smoke_iou'?)" in capsys.readouterr().err


def test_a_configuration_whose_every_seed_failed_is_a_row_with_no_seeds_even_as_the_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_cache, capsys: pytest.CaptureFixture[str]
) -> None:
    from ablate._compare import compare_studies

    monkeypatch.setenv("ABLATE_CACHE", str(shared_cache.root))
    path = tmp_path / "a.yaml"
    search = {"grid": {"train.lr": [1e-3, 1e8]}, "baseline": {"train.lr": 1e8}}  # lr 1e8 diverges in every seed
    path.write_text(yaml.safe_dump({"name": "a", "config": TINY, "seeds": 2, **search}))
    assert main(["run", str(path), "--out", str(tmp_path / "a"), "--quiet", "--no-report"]) == 1
    table = compare_studies([path], [tmp_path / "a"])  # the failed baseline raised KeyError; it was left out
    assert table["configuration"].tolist() == ["train.lr=100000000.0 (reference)", "train.lr=0.001"]
    assert table["seeds"].tolist() == [0, 2] and table["shared seeds"].tolist() == [0, 0]
    assert table["difference"].isna().all()
    capsys.readouterr()
    assert main(["compare", str(path), "--out", str(tmp_path / "a"), "--csv", str(tmp_path / "no" / "t.csv")]) == 2
    assert f"--csv {tmp_path / 'no' / 't.csv'}: no folder {tmp_path / 'no'}" in capsys.readouterr().err
