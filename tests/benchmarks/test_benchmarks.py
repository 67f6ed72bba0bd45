"""Every benchmark script runs at ``--size tiny`` and writes its JSON with the expected keys (no timing checks)."""

import importlib
import json
import sys
from pathlib import Path

import psycopg
import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
STEP_KEYS = {"cold_s", "warm_s", "images_per_s", "x_cams", "tracemalloc_peak_mb", "maxrss_mb", "cuda_peak_mb"}
ENVIRONMENT = {"device", "device_model", "amp", "torch", "torch_threads", "load_average", "load_average_end"}


@pytest.fixture(scope="module")
def scripts():
    """Imports a benchmark script as its command line would (``_common`` beside it on the path)."""
    sys.path.insert(0, str(BENCHMARKS))
    threads = torch.get_num_threads()
    yield importlib.import_module
    torch.set_num_threads(threads)  # tiny runs set one thread
    sys.path.remove(str(BENCHMARKS))


def run(scripts, name: str, tmp_path: Path) -> dict:
    scripts(name).main(["--size", "tiny", "--out", str(tmp_path)])
    record = json.loads((tmp_path / f"{name}-tiny.json").read_text())
    assert record["benchmark"] == name and record["size"] == "tiny"
    assert set(record["environment"]) >= ENVIRONMENT
    return record


def test_overhead(scripts, tmp_path):
    record = run(scripts, "overhead", tmp_path)
    assert set(record["results"]) == {"augment_off", "augment_on"}
    for result in record["results"].values():
        assert result["train_ratio"] > 0 and result["loop_ratio"] > 0
        assert set(result["breakdown_median_s"]) == {
            "validate",
            "data",
            "train",
            "cams",
            "postprocess",
            "metrics",
            "other",
            "storage_write",
            "storage_read",
        }
    assert record["setting"]["steps"] == 2


def test_reuse(scripts, tmp_path):
    summary = run(scripts, "reuse", tmp_path)["summary"]
    # two chains on one seed share their model: trained once with the shared cache, once per chain without
    assert summary["fresh_trainings"] == 2 * summary["shared_trainings"] > 0
    assert summary["trainings_ratio"] == 2 and summary["wall_ratio"] > 0


def test_reuse_of_the_segmentation_study(scripts, tmp_path):
    study = BENCHMARKS.parent / "studies" / "segmentation.yaml"
    scripts("reuse").main(["--size", "tiny", "--out", str(tmp_path), "--study", str(study)])
    record = json.loads((tmp_path / "reuse-segmentation-tiny.json").read_text())
    rows = record["rounds"][0]
    assert [row["params"]["postprocess"] for row in rows] == [[], ["crf"]]
    # a chain-only change on the shared cache trains the segmenter alone; a fresh cache trains all three again
    assert [row["shared"]["trainings"] for row in rows] == [3, 1]
    assert [row["fresh"]["trainings"] for row in rows] == [3, 3]


def test_shared_teacher(scripts, tmp_path):
    record = run(scripts, "shared_teacher", tmp_path)
    summary, rows = record["summary"], record["rows"]
    # two lambdas on one seed: the first trains the teacher and a student, the second only a student
    assert [(r["cached"]["trainings"], r["live"]["trainings"]) for r in rows] == [(2, 2), (1, 1)]
    assert summary["same_smoke_iou"] and summary["student_step_ratio"] > 0 and summary["wall_ratio"] > 0


def test_scale(scripts, tmp_path):
    record = run(scripts, "scale", tmp_path)
    rows, summary = record["rows"], record["summary"]
    assert [r["trials"] for r in rows] == list(scripts("scale").SIZES["tiny"])
    assert all(r[step] > 0 for r in rows for step in scripts("scale").STEPS)
    assert set(summary["growth_exponent"]) == set(scripts("scale").STEPS)


def test_scale_on_postgresql(scripts, tmp_path, postgres):
    scripts("scale").main(["--size", "tiny", "--out", str(tmp_path), "--postgresql", postgres])
    record = json.loads((tmp_path / "scale-postgresql-tiny.json").read_text())
    assert record["storage"] == "postgresql"
    assert [r["trials"] for r in record["rows"]] == list(scripts("scale").SIZES["tiny"])
    with psycopg.connect(postgres, autocommit=True) as connection:  # every size's database dropped again
        names = {row[0] for row in connection.execute("SELECT datname FROM pg_database")}
    assert not any(name.startswith("ablate_scale_") for name in names)


def test_workers(scripts, tmp_path):
    summary = run(scripts, "workers", tmp_path)["summary"]
    assert summary["workers_1_trials"] == summary["workers_2_trials"] == 2  # CPU: 1 and 2 workers
    assert summary["speedup_2"] > 0 and summary["speedup_span_2"] > 0 and summary["best_workers"] in (1, 2)


def test_throughput(scripts, tmp_path):
    import ablate

    record = run(scripts, "throughput", tmp_path)
    steps = record["results"]["64"]["steps"]
    assert set(steps) == {"cams", *ablate.POSTPROCESSORS.names()} - set(record["skipped"])
    for step in steps.values():
        assert {
            "cold_s",
            "warm_s",
            "images_per_s",
            "x_cams",
            "tracemalloc_peak_mb",
            "maxrss_mb",
            "cuda_peak_mb",
        } <= set(step)


def test_startup(scripts, tmp_path):
    summary = run(scripts, "startup", tmp_path)["summary"]
    keys = {
        "run_first_step_s",
        "trial_first_step_s",
        "load_components_s",
        "import_torch_s",
        "import_ablate_s",
        "interpreter_wall_s",
        "import_share",
        "components_share",
        "run_vs_trial",
        "status_s",
        "status_vs_run",
    }
    assert keys <= set(summary)


def test_learning_signal(scripts, tmp_path):
    record = run(scripts, "learning_signal", tmp_path)
    assert set(record["summary"]) == set(scripts("learning_signal").CONFIGURATIONS)
    for summary in record["summary"].values():
        assert {"val_accuracy", "accuracy", "chimney_only_fpr", "smoke_iou_std", "detectable_smoke_iou"} <= set(summary)
        assert summary["seeds"] == 1 and 0.0 <= summary["val_accuracy"] <= 1.0
    assert record["decoupled_control"] == {"data.train_chimney_without_smoke": 1.0}
    assert all(isinstance(c["holds"], bool) for c in record["criteria"])


def test_pretraining(scripts, tmp_path):
    record = run(scripts, "pretraining", tmp_path)
    rows = scripts("pretraining").configurations({"name": "fractaldb"})
    assert set(record["summary"]) == set(rows)
    assert set(record["pretrain_s"]) == {"test_resnet", "test_vit"}  # each backbone pre-trained once
    assert all(summary["seeds"] == 1 for summary in record["summary"].values())


def test_paper_scale(scripts, tmp_path):
    record = run(scripts, "paper_scale", tmp_path)
    (row,) = record["rows"]  # CPU: one student, batch 2, the harness variant only
    assert (row["student"], row["batch"], row["variant"], row["amp"]) == ("test_vit", 2, "harness", None)
    assert row["flops_per_step"] > 0 and row["mfu"] > 0 and row["images_per_s"] > 0
    assert record["peak_source"].startswith("no vendor figure")
    shares = [op["share"] for op in record["profiles"]["test_vit"]]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1


def test_racing(scripts, tmp_path):
    record = run(scripts, "racing", tmp_path)
    results = record["results"]
    assert set(record["best"]) == {"best/identical-2", "best/identical-4", "best/identical-8"}
    assert set(results) == {f"{s}/{p}" for s in ("lambda", "normal") for p in ("obrien-fleming", "pocock")}
    for result in results.values():
        assert result["race_trials"] > 0 and 0 <= result["race_mean_power"] <= 1 and 0 <= result["race_max_error"] <= 1
        assert result["configurations"]["no difference"]["true_difference"] == 0
        assert set(result["configurations"]["no difference"]["race"]) == {"false_positive", "mean_seeds"}
