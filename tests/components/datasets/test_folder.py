"""The folder dataset: labels from sub-folders or a CSV, test masks, tiling and error messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ablate import DATASETS, Dataset, RegistryError
from ablate.components.datasets.folder import DatasetError


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _image(height: int, width: int, value: int) -> np.ndarray:
    return np.full((height, width, 3), value, dtype=np.uint8)


def _mask(height: int, width: int, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """A 0/255 mask, smoke inside ``box`` = (top, left, bottom, right)."""
    mask = np.zeros((height, width), dtype=np.uint8)
    if box is not None:
        top, left, bottom, right = box
        mask[top:bottom, left:right] = 255
    return mask


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Two train images per class; test image ``a`` with smoke at its top left, ``b`` without smoke."""
    root = tmp_path / "data"
    for name, value in (("no_smoke", 20), ("smoke", 200)):
        for i in range(2):
            _save(root / "train" / name / f"{i}.png", _image(30, 40, value))
    (root / "train" / "smoke" / "notes.txt").write_text("not an image")
    _save(root / "test" / "images" / "a.png", _image(60, 100, 120))
    _save(root / "test" / "masks" / "a.png", _mask(60, 100, (0, 0, 20, 30)))
    _save(root / "test" / "images" / "b.jpg", _image(60, 100, 80))
    _save(root / "test" / "masks" / "b.png", _mask(60, 100))
    return root


def _create(root: Path, **params: object) -> Dataset:
    return DATASETS.create("folder", root=str(root), cache_dir=root.parent / "cache", **params)


def _message(root: Path, **params: object) -> str:
    """The one-line error of a bad parameter: the registry's for types and bounds, the dataset's for the rest."""
    with pytest.raises((DatasetError, RegistryError)) as info:
        _create(root, **params)
    message = str(info.value)
    prefix = "folder dataset: " if info.type is DatasetError else "parameter "
    assert message.startswith(prefix) and "\n" not in message
    return message


def test_registered_with_description() -> None:
    entry = DATASETS.get("folder")
    assert entry.description
    assert entry.param("root").required
    with pytest.raises(RegistryError, match="needs parameter 'root'"):
        DATASETS.create("folder", cache_dir=Path("unused"))


def test_subfolder_labels_and_resizing(root: Path) -> None:
    data = _create(root, image_size=16)
    assert data.train.labels.tolist() == [0, 0, 1, 1]
    assert data.train.names == [
        "train/no_smoke/0.png",
        "train/no_smoke/1.png",
        "train/smoke/0.png",
        "train/smoke/1.png",
    ]
    assert data.train.images.shape == (4, 16, 16, 3)
    assert (data.train.images[data.train.labels == 1] == 200).all()
    assert data.train.masks is None


def test_optional_val_split_from_class_folders(root: Path) -> None:
    assert _create(root, image_size=16).val is None
    _save(root / "val" / "smoke" / "v.png", _image(30, 40, 200))
    _save(root / "val" / "no_smoke" / "w.png", _image(30, 40, 20))
    data = _create(root, image_size=16)
    assert data.val.labels.tolist() == [0, 1] and data.val.names == ["val/no_smoke/w.png", "val/smoke/v.png"]
    (root / "val" / "no_smoke" / "w.png").unlink()
    (root / "val" / "smoke" / "v.png").unlink()
    assert _message(root) == f"folder dataset: no val images in {root / 'val'}"


def test_optional_train_masks_for_stage_3(root: Path) -> None:
    assert _create(root, image_size=16).train.masks is None
    for name in ("no_smoke", "smoke"):
        for i in range(2):
            box = (0, 0, 15, 20) if name == "smoke" else None  # the top-left quarter
            _save(root / "train" / "masks" / name / f"{i}.png", _mask(30, 40, box))
    data = _create(root, image_size=16)
    assert data.train.masks.shape == (4, 16, 16)
    assert data.train.masks.sum(axis=(1, 2)).tolist() == [0, 0, 64, 64]  # 8 x 8 of 16 x 16, in label order
    (root / "train" / "masks" / "smoke" / "1.png").unlink()
    assert _message(root) == f"folder dataset: missing mask {root / 'train' / 'masks' / 'smoke' / '1.png'}"


def test_custom_class_folders(root: Path) -> None:
    (root / "train" / "no_smoke").rename(root / "train" / "clear")
    (root / "train" / "smoke").rename(root / "train" / "plume")
    data = _create(root, image_size=16, classes=["clear", "plume"], object_name="chimney stack")
    assert data.train.labels.tolist() == [0, 0, 1, 1]
    assert (data.class_name, data.object_name) == ("plume", "chimney stack")  # what reports call them


def test_csv_labels_by_name_and_index(root: Path) -> None:
    (root / "labels.csv").write_text("image,label\nsmoke/0.png,smoke\nno_smoke/0.png,0\nsmoke/1.png, 1\n")
    data = _create(root, image_size=16, train_csv="labels.csv")
    assert data.train.labels.tolist() == [1, 0, 1]
    assert data.train.names == ["train/smoke/0.png", "train/no_smoke/0.png", "train/smoke/1.png"]


def test_test_masks_labels_and_optional_cooccurrence(root: Path) -> None:
    data = _create(root, image_size=20)
    assert data.test.names == ["a", "b"]
    assert data.test.labels.tolist() == [1, 0]
    assert data.test.masks.shape == (2, 20, 20) and set(np.unique(data.test.masks)) == {0, 1}
    # Smoke covered the top 1/3 x left 3/10 of the image; nearest resizing keeps the proportion.
    assert data.test.masks[0].sum() == pytest.approx(20 * 20 * 0.1, abs=8)
    assert data.test.cooccur_masks is None

    _save(root / "test" / "cooccur" / "a.png", _mask(60, 100, (30, 50, 60, 60)))
    _save(root / "test" / "cooccur" / "b.png", _mask(60, 100))
    with_cooccur = _create(root, image_size=20)
    assert with_cooccur.test.cooccur_masks.shape == (2, 20, 20)
    assert with_cooccur.test.cooccur_masks[0].any() and not with_cooccur.test.cooccur_masks[1].any()


def test_tiles_cover_the_image_with_edge_aligned_last_tile(root: Path) -> None:
    data = _create(root, image_size=8, tile=40)
    # 100 wide: x = 0, 40, 60; 60 high: y = 0, 20; two images.
    assert len(data.test) == 12
    assert data.test.names[:6] == ["a@0,0", "a@0,40", "a@0,60", "a@20,0", "a@20,40", "a@20,60"]
    assert data.test.labels.tolist()[:6] == [1, 0, 0, 0, 0, 0]
    assert _create(root, image_size=8, tile=40, tile_stride=20).test.names[:4] == [
        "a@0,0",
        "a@0,20",
        "a@0,40",
        "a@0,60",
    ]


def test_tile_selection_by_smoke(root: Path) -> None:
    _save(root / "test" / "masks" / "a.png", _mask(60, 100, (0, 0, 60, 45)))  # 40x40 tiles at x=0 full, x=40 partly
    kept = _create(root, image_size=8, tile=40, min_smoke_fraction=0.01)
    assert kept.test.names == ["a@0,0", "a@0,40", "a@20,0", "a@20,40"]
    assert kept.test.labels.tolist() == [1, 1, 1, 1]
    top = _create(root, image_size=8, tile=40, max_tiles_per_image=2)
    # Full-smoke tiles a@0,0 and a@20,0 win; ties at 0 smoke in b keep raster order.
    assert top.test.names == ["a@0,0", "a@20,0", "b@0,0", "b@0,40"]
    both = _create(root, image_size=8, tile=40, min_smoke_fraction=0.5, max_tiles_per_image=1)
    assert both.test.names == ["a@0,0"]


def test_image_smaller_than_tile_is_taken_whole(root: Path) -> None:
    data = _create(root, image_size=8, tile=512)
    assert data.test.names == ["a", "b"]


def test_missing_root_and_folders(root: Path, tmp_path: Path) -> None:
    assert str(tmp_path / "nowhere") in _message(tmp_path / "nowhere")
    (root / "train" / "smoke" / "0.png").unlink()
    (root / "train" / "smoke" / "1.png").unlink()
    (root / "train" / "smoke" / "notes.txt").unlink()
    (root / "train" / "smoke").rmdir()
    assert _message(root) == f"folder dataset: missing folder {root / 'train' / 'smoke'}"


def test_missing_test_folders(root: Path) -> None:
    for path in sorted((root / "test" / "masks").iterdir()):
        path.unlink()
    (root / "test" / "masks").rmdir()
    assert _message(root) == f"folder dataset: missing folder {root / 'test' / 'masks'}"


def test_missing_mask_file(root: Path) -> None:
    (root / "test" / "masks" / "b.png").unlink()
    assert _message(root) == f"folder dataset: missing mask {root / 'test' / 'masks' / 'b.png'}"


def test_missing_cooccurrence_mask(root: Path) -> None:
    _save(root / "test" / "cooccur" / "a.png", _mask(60, 100))
    assert _message(root) == f"folder dataset: missing mask {root / 'test' / 'cooccur' / 'b.png'}"


def test_missing_csv_image_and_csv(root: Path) -> None:
    (root / "labels.csv").write_text("image,label\nno_smoke/0.png,no_smoke\nsmoke/9.png,smoke\n")
    assert (
        _message(root, train_csv="labels.csv") == f"folder dataset: missing image {root / 'train' / 'smoke' / '9.png'}"
    )
    assert str(root / "other.csv") in _message(root, train_csv="other.csv")


def test_unreadable_image(root: Path) -> None:
    bad = root / "train" / "smoke" / "1.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    assert _message(root).startswith(f"folder dataset: cannot read image {bad}: ")


def test_truncated_image(root: Path) -> None:
    bad = root / "test" / "images" / "b.jpg"
    bad.write_bytes(bad.read_bytes()[:200])
    assert _message(root).startswith(f"folder dataset: cannot read image {bad}: ")


def test_mask_size_differs_from_image(root: Path) -> None:
    mask = root / "test" / "masks" / "a.png"
    _save(mask, _mask(60, 90))
    assert _message(root) == f"folder dataset: mask {mask} is 90x60 but its image is 100x60"


def test_empty_splits(root: Path) -> None:
    for path in (root / "test" / "images").iterdir():
        path.unlink()
    assert _message(root) == f"folder dataset: no test images in {root / 'test' / 'images'}"
    for path in (root / "train").glob("*/*.png"):
        path.unlink()
    assert _message(root) == f"folder dataset: no train images in {root / 'train'}"


def test_a_class_without_images_is_refused_by_name(root: Path) -> None:
    # a class folder of .tif files (an unsupported suffix) trained a one-class classifier, exit 0
    for path in (root / "train" / "smoke").glob("*.png"):
        path.rename(path.with_suffix(".tif"))
    assert _message(root) == (
        f"folder dataset: no train images of class 'smoke': {root / 'train' / 'smoke'} holds none "
        "(image files: .png, .jpg, .jpeg)"
    )
    (root / "labels.csv").write_text("image,label\nno_smoke/0.png,no_smoke\n")
    assert "no train images of class 'smoke': labels.csv lists none" in _message(root, train_csv="labels.csv")


def test_a_test_split_without_smoke_is_refused(root: Path) -> None:
    # every smoke IoU was NaN and accuracy 1.0, exit 0
    _save(root / "test" / "masks" / "a.png", _mask(60, 100))
    assert _message(root).startswith(f"folder dataset: no test mask in {root / 'test' / 'masks'} marks any smoke")


def test_16_bit_grey_images_keep_their_levels(root: Path) -> None:
    # PIL's convert("RGB") of an I;16 image saturated every pixel to white
    grey = np.full((30, 40), 20 * 257, dtype=np.uint16)
    for path in (root / "train" / "no_smoke").glob("*.png"):
        Image.fromarray(grey).save(path)
    assert Image.open(next((root / "train" / "no_smoke").glob("*.png"))).mode.startswith("I")
    dataset = _create(root)
    assert np.all(dataset.train.images[dataset.train.labels == 0] == 20)


def test_no_tile_meets_min_smoke_fraction(root: Path) -> None:
    assert str(root / "test" / "images") in _message(root, min_smoke_fraction=0.5)


def test_label_outside_class_list(root: Path) -> None:
    csv_path = root / "labels.csv"
    csv_path.write_text("image,label\nsmoke/0.png,smoke\nsmoke/1.png,fog\n")
    message = _message(root, train_csv="labels.csv")
    assert message.startswith(f"folder dataset: {csv_path} line 3: label 'fog' is not one of no_smoke, smoke, 0, 1")
    csv_path.write_text("image,label\nsmoke/0.png,2\n")
    assert "label '2'" in _message(root, train_csv="labels.csv")


def test_csv_without_header(root: Path) -> None:
    (root / "labels.csv").write_text("smoke/0.png,smoke\n")
    assert "'image' and 'label'" in _message(root, train_csv="labels.csv")


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"classes": ["a", "b", "c"]}, "classes"),
        ({"classes": "smoke"}, "classes"),
        ({"tile": 0}, "tile"),
        ({"tile": 32, "tile_stride": 0}, "tile_stride"),
        ({"tile_stride": 16}, "tile_stride"),
        ({"max_tiles_per_image": 0}, "max_tiles_per_image"),
        ({"min_smoke_fraction": 1.5}, "min_smoke_fraction"),
        ({"image_size": 4}, "image_size"),
    ],
)
def test_bad_params_name_the_parameter(root: Path, params: dict[str, object], name: str) -> None:
    assert name in _message(root, **params)
