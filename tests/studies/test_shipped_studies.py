"""Every shipped study validates; the paper-scale one names its missing files."""

from pathlib import Path

import pytest

from ablate import ConfigError
from ablate.study import load_study

STUDIES = Path(__file__).resolve().parents[2] / "studies"


@pytest.mark.parametrize("path", sorted(p for p in STUDIES.glob("*.yaml") if p.stem != "paper"), ids=lambda p: p.stem)
def test_shipped_study_validates(path):
    study = load_study(path)
    assert study.total_trials() and study.seeds


def test_paper_study_validates_without_its_files_and_names_them():
    study = load_study(STUDIES / "paper.yaml", check_files=False)
    assert study.config["student"]["backbone"]["model"] == "vit_base_patch16_224"
    missing = r"paper.yaml: config: teacher: backbone 'resnet50': checkpoint .* does not exist"
    with pytest.raises(ConfigError, match=missing):
        load_study(STUDIES / "paper.yaml")


def test_lambda_study_matches_the_paper_sweep():
    study = load_study(STUDIES / "lambda.yaml")
    lambdas = [c["transfer.lambda"] for c in study.configurations() if "transfer.lambda" in c]
    assert lambdas == [0.3, 0.5, 0.8, 1.0, 1.3, 1.5] and study.total_trials() == 24
