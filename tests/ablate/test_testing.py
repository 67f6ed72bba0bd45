"""The contract checks (``ablate.testing``) over every registered component, and that they catch a broken one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import ablate
from ablate.testing import CHECKS, check_component

ablate.load_components()

#: Parameters of the built-ins whose check needs more than their defaults: a required parameter, or defaults sized
#: for real data (a ViT-B CLIP, SAM ViT-B at 1024 px, layers of a 12-block ViT).
PARAMS: dict[tuple[str, str], dict[str, Any]] = {
    ("datasets", "synthetic-smoke"): {"image_size": 32, "n_train": 16, "n_val": 4, "n_test": 8},
    ("backbones", "timm"): {"model": "test_resnet"},
    ("pretrainers", "fractaldb"): {"classes": 3, "per_class": 4, "image_size": 32, "steps": 3, "batch_size": 4},
    ("postprocessors", "clip"): {"model": "ViT-S-32", "prompts": ["smoke"], "negative_prompts": ["sky"]},
    ("postprocessors", "sam"): {"model_type": "tiny", "points_per_side": 2},
    ("postprocessors", "cam_fusion"): {"layers": ["blocks.-2", "blocks.-1"]},
    ("postprocessors", "affinitynet"): {"epochs": 1},
    ("segmenters", "fpn"): {"model": "test_resnet"},
}
ENTRIES = [(kind, name) for kind, registry in ablate.REGISTRIES.items() for name in registry.names()]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for every check of this module: the small trial is trained once, then read from its cache."""
    return tmp_path_factory.mktemp("contracts")


def _image_folder(root: Path) -> Path:
    """A ``folder`` dataset: labelled train images in class folders, test images with masks."""
    rng = np.random.default_rng(0)
    for split, names in (("train", ("smoke", "no_smoke")), ("test", ("images",))):
        for name in names:
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(3):
                pixels = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")
    (root / "test" / "masks").mkdir(exist_ok=True)
    for i in range(3):
        Image.fromarray((rng.random((20, 20)) < 0.3).astype(np.uint8) * 255).save(root / "test" / "masks" / f"{i}.png")
    return root


def test_every_kind_has_a_check() -> None:
    assert set(CHECKS) == set(ablate.REGISTRIES)


@pytest.mark.parametrize(("kind", "name"), ENTRIES, ids=[f"{kind}-{name}" for kind, name in ENTRIES])
def test_every_registered_component_keeps_its_contract(kind: str, name: str, folder: Path) -> None:
    params = dict(PARAMS.get((kind, name), {}))
    if (kind, name) == ("datasets", "folder"):
        params["root"] = str(_image_folder(folder / "images"))
    check_component(kind, name, folder=folder, **params)


@pytest.fixture
def scratch_registries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Components a test registers are gone after it (each registry's entries restored)."""
    for registry in ablate.REGISTRIES.values():
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))


@pytest.mark.usefixtures("scratch_registries")
def test_a_plugin_is_checked_like_a_built_in_and_a_broken_one_fails_naming_the_rule(folder: Path) -> None:
    @ablate.DISTANCES.register("test_contract_half_l1")
    def half_l1() -> Any:
        """Half the L1 distance: keeps the contract."""
        return lambda a, b: 0.5 * (a - b).abs().sum(dim=1)

    @ablate.DISTANCES.register("test_contract_signed")
    def signed() -> Any:
        """A signed difference: negative for some pairs, which no distance may be."""
        return lambda a, b: (a - b).sum(dim=1)

    check_component("distances", "test_contract_half_l1", folder=folder)
    with pytest.raises(AssertionError, match=r"^distances 'test_contract_signed': a distance is never negative"):
        check_component("distances", "test_contract_signed", folder=folder)


@pytest.mark.usefixtures("scratch_registries")
def test_a_backbone_whose_map_misstates_its_channels_fails(folder: Path) -> None:
    @ablate.BACKBONES.register("test_contract_wide")
    class Wide(torch.nn.Module):
        """Says 4 channels, gives 5."""

        out_channels = 4

        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 5, 3, stride=4)

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return self.conv(images)

    with pytest.raises(AssertionError, match=r"forward\(images\): 5 channels, expected 4"):
        check_component("backbones", "test_contract_wide", folder=folder)


def test_missing_required_parameters_are_named(folder: Path) -> None:
    with pytest.raises(AssertionError, match="backbones 'timm' needs parameter 'model'"):
        check_component("backbones", "timm", folder=folder)
