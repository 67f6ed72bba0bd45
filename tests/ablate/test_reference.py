"""Reference files: the published numbers a study names, checked on load."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ablate import ConfigError
from ablate._reference import load_reference
from ablate.study import load_study

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "studies" / "references" / "paper.yaml"


def test_the_shipped_paper_reference_holds_the_papers_tables() -> None:
    paper = load_reference(PAPER)
    assert paper.metric == "smoke_iou"
    assert paper.transfer[("teacher_student", "cosine", "global")] == 0.4737 and len(paper.transfer) == 10
    assert paper.lambdas[1.0] == 0.4737 and len(paper.lambdas) == 6
    assert paper.postprocess[("crf", "sam")] == (0.5293, None) and paper.postprocess[()] == (0.4625, 0.3742)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"metric": "smoke_iou", "tables": []}, "tables: unknown key"),
        ({"transfer": []}, "metric: expected the metric name"),
        ({"metric": "smoke_iuo"}, "metric: 'smoke_iuo' is not in the metrics registry (did you mean 'smoke_iou'?)"),
        (
            {
                "metric": "smoke_iou",
                "transfer": [{"paradigm": "teacher_student", "distance": "cosin", "level": "global"}],
            },
            "transfer[0].distance: 'cosin' is not in the distances registry",
        ),
        (
            {
                "metric": "smoke_iou",
                "transfer": [{"paradigm": "single", "distance": "l1", "level": "global", "value": "x"}],
            },
            "transfer[0].value: expected a number, got 'x'",
        ),
        ({"metric": "smoke_iou", "postprocess": [{"chain": "crf"}]}, "postprocess[0].chain: expected a list"),
        ({"metric": "smoke_iou", "lambda": {0.5: None}}, "lambda.0.5: expected a number"),
    ],
)
def test_a_bad_reference_names_the_file_and_field(tmp_path: Path, content: dict, message: str) -> None:
    path = tmp_path / "ref.yaml"
    path.write_text(yaml.safe_dump(content))
    with pytest.raises(ConfigError) as info:
        load_reference(path)
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)


def test_a_study_names_its_reference_relative_to_its_file(tmp_path: Path) -> None:
    (tmp_path / "refs").mkdir()
    (tmp_path / "refs" / "mine.yaml").write_text("metric: miou\nlambda: {1.0: 0.5}\n")
    study = tmp_path / "study.yaml"
    study.write_text("grid: {transfer.lambda: [1.0]}\nreference: refs/mine.yaml\n")
    assert load_study(study, check_configs=False).reference.lambdas == {1.0: 0.5}
    study.write_text("grid: {transfer.lambda: [1.0]}\nreference: refs/missing.yaml\n")
    with pytest.raises(ConfigError, match=r"study.yaml: reference: .*refs/missing.yaml does not exist"):
        load_study(study, check_configs=False)
