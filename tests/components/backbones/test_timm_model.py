"""The timm backbone: token sequences -> maps, CNN maps, and the layer Grad-CAM hooks."""

from __future__ import annotations

import pytest
import torch

from ablate import BACKBONES
from ablate.components.backbones.timm_model import TimmBackbone


def _vit(patch: int) -> TimmBackbone:
    return BACKBONES.create("timm", model="test_vit", model_args={"patch_size": patch})


def _resnet(**model_args: int) -> TimmBackbone:
    return BACKBONES.create("timm", model="test_resnet", model_args=model_args)


@pytest.fixture(scope="module")
def vit8() -> TimmBackbone:
    torch.manual_seed(0)
    return _vit(8).eval()


@pytest.mark.parametrize(("patch", "size", "grid"), [(8, 64, 8), (8, 96, 12), (16, 64, 4), (16, 96, 6)])
def test_vit_tokens_become_a_map(patch: int, size: int, grid: int) -> None:
    backbone = _vit(patch).eval()
    assert backbone.is_vit and backbone.out_channels == 64 and backbone.num_prefix_tokens == 1
    images = torch.randn(2, 3, size, size)
    with torch.no_grad():
        out = backbone(images)
        tokens = backbone.model.forward_features(images)
    assert tokens.shape == (2, 1 + grid * grid, 64)  # the class token comes first
    assert out.shape == (2, 64, grid, grid)
    # row-major: location (i, j) is patch token 1 + i * grid + j
    torch.testing.assert_close(out[:, :, 1, 2], tokens[:, 1 + grid + 2])
    torch.testing.assert_close(out[:, :, -1, -1], tokens[:, -1])


def test_to_map_drops_prefix_tokens_and_keeps_maps(vit8: TimmBackbone) -> None:
    images = torch.zeros(1, 3, 16, 24)  # a 2 x 3 patch grid
    tokens = torch.arange(7 * 2, dtype=torch.float32).view(1, 7, 2)  # 1 class token + 6 patch tokens, 2 channels
    tokens[0, 0] = 1000.0
    out = vit8.to_map(tokens, images)
    assert out.tolist() == [[[[2.0, 4.0, 6.0], [8.0, 10.0, 12.0]], [[3.0, 5.0, 7.0], [9.0, 11.0, 13.0]]]]
    feature_map = torch.randn(1, 4, 2, 3)
    assert vit8.to_map(feature_map, images) is feature_map


@pytest.mark.parametrize(
    ("model_args", "size", "grid"), [({}, 64, 2), ({"output_stride": 8}, 64, 8), ({"output_stride": 8}, 96, 12)]
)
def test_cnn_map_shape(model_args: dict, size: int, grid: int) -> None:
    backbone = _resnet(**model_args).eval()
    assert not backbone.is_vit and backbone.num_prefix_tokens == 0 and backbone.out_channels == 96
    with torch.no_grad():
        assert backbone(torch.randn(2, 3, size, size)).shape == (2, 96, grid, grid)


def test_cam_layer_defaults(vit8: TimmBackbone) -> None:
    assert vit8.cam_layer(None) is vit8.model.blocks[5].norm1  # the paper's blocks[-1].norm1
    resnet = _resnet(output_stride=8)
    assert resnet.cam_layer(None) is resnet  # a CNN's final feature map


def test_cam_layer_paths(vit8: TimmBackbone) -> None:
    assert vit8.cam_layer("blocks.-1.norm1") is vit8.model.blocks[5].norm1
    assert vit8.cam_layer("blocks.-6.norm1") is vit8.model.blocks[0].norm1
    assert vit8.cam_layer("blocks.2.attn.qkv") is vit8.model.blocks[2].attn.qkv
    assert vit8.cam_layer("norm") is vit8.model.norm
    resnet = _resnet()
    assert resnet.cam_layer("layer4.-1") is resnet.model.layer4[-1]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("blocks.6.norm1", "layer 'blocks.6.norm1': '6' does not exist in Sequential"),
        ("blocks.-7", "layer 'blocks.-7': '-7' does not exist in Sequential"),
        ("block.0", "layer 'block.0': 'block' does not exist in VisionTransformer"),
        ("blocks.0.norm1.0", "layer 'blocks.0.norm1.0': '0' does not exist in LayerNorm"),
        ("blocks.0.nrom1", "layer 'blocks.0.nrom1': 'nrom1' does not exist in Block"),
    ],
)
def test_bad_cam_layer_path(vit8: TimmBackbone, path: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$".replace(".", r"\.")):
        vit8.cam_layer(path)


@pytest.mark.parametrize("path", ["blocks.-1.norm1.weight", "num_features"])
def test_cam_layer_path_must_name_a_module(vit8: TimmBackbone, path: str) -> None:
    with pytest.raises(ValueError, match=f"^layer '{path}'"):
        vit8.cam_layer(path)


def test_unknown_model_suggests_the_closest_name() -> None:
    with pytest.raises(ValueError, match=r"^'test_vitt' is not a timm model \(did you mean 'test_vit'\?\)"):
        BACKBONES.create("timm", model="test_vitt")


def test_conv_stem_keeps_the_token_grid_and_replaces_patchify() -> None:
    torch.manual_seed(0)
    backbone = BACKBONES.create("timm", model="test_vit", model_args={"patch_size": 8}, conv_stem=True).eval()
    stem = backbone.model.patch_embed.proj
    strides = [m.stride[0] for m in stem if isinstance(m, torch.nn.Conv2d)]
    assert strides == [2, 2, 2, 1] and stem[-1].out_channels == 64  # three 3x3 stride-2 convs, then 1x1
    with torch.no_grad():
        assert backbone(torch.randn(2, 3, 64, 64)).shape == (2, 64, 8, 8)
    assert backbone.cam_layer(None) is backbone.model.blocks[-1].norm1


def test_a_checkpoint_of_a_conv_stem_backbone_restores_every_tensor(tmp_path, caplog) -> None:
    # timm loads a checkpoint into the plain model, which dropped the trained stem: it came back fresh
    torch.manual_seed(0)
    trained = BACKBONES.create("timm", model="test_vit", model_args={"patch_size": 8}, conv_stem=True)
    torch.save(trained.model.state_dict(), tmp_path / "student_backbone.pt")
    torch.manual_seed(1)
    loaded = BACKBONES.create(
        "timm",
        model="test_vit",
        model_args={"patch_size": 8},
        conv_stem=True,
        checkpoint=str(tmp_path / "student_backbone.pt"),
    )
    expected, got = trained.model.state_dict(), loaded.model.state_dict()
    assert list(got) == list(expected)
    assert [key for key in expected if not torch.equal(expected[key], got[key])] == []
    assert "Unexpected keys" not in caplog.text


def test_a_checkpoint_of_another_network_is_refused_not_left_at_random_weights(tmp_path) -> None:
    # timm only logged the keys it did not find: the student trained from random weights, silently
    teacher = BACKBONES.create("timm", model="test_resnet")
    torch.save(teacher.model.state_dict(), tmp_path / "teacher_backbone.pt")
    torch.save({"teacher": teacher.model.state_dict()}, tmp_path / "weights.pt")  # an export's several networks
    for name in ("teacher_backbone.pt", "weights.pt"):
        with pytest.raises(ValueError, match=rf"checkpoint .*{name} lacks \d+ of the network's \d+ tensors"):
            BACKBONES.create("timm", model="test_vit", checkpoint=str(tmp_path / name))
    with torch.device("meta"), pytest.raises(ValueError, match="lacks"):  # what `ablate validate` builds
        BACKBONES.create("timm", model="test_vit", checkpoint=str(tmp_path / "teacher_backbone.pt"))
    loaded = BACKBONES.create("timm", model="test_resnet", checkpoint=str(tmp_path / "teacher_backbone.pt"))
    assert all(torch.equal(v, loaded.model.state_dict()[k]) for k, v in teacher.model.state_dict().items())


def test_a_checkpoint_with_another_conv_stem_is_refused_by_name(tmp_path) -> None:
    wide = BACKBONES.create("timm", model="test_vit", model_args={"patch_size": 4}, conv_stem=True)
    torch.save(wide.model.state_dict(), tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"checkpoint .*other.pt has another conv stem"):
        BACKBONES.create(
            "timm",
            model="test_vit",
            model_args={"patch_size": 8},
            conv_stem=True,
            checkpoint=str(tmp_path / "other.pt"),
        )


def test_conv_stem_needs_a_vit_with_a_power_of_two_patch() -> None:
    with pytest.raises(ValueError, match="conv_stem needs a ViT"):
        BACKBONES.create("timm", model="test_resnet", conv_stem=True)
    with pytest.raises(ValueError, match="power-of-two patch size"):
        BACKBONES.create("timm", model="test_vit", model_args={"patch_size": 6}, conv_stem=True)
