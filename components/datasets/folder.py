"""Real data from a folder: labelled train images and pixel-labelled test images, optionally tiled.

Layout under ``root``::

    train/<class>/<image>            one sub-folder per class (unless ``train_csv`` is given)
    train/masks/<class>/<stem>.png   optional smoke masks of the train images (the path below ``train/`` with a
                                     .png suffix), for stage 3: pseudo-mask quality on train, ground-truth bound
    val/<class>/<image>              optional held-out images drawn like train (val_accuracy)
    test/images/<stem>.png|.jpg      test images
    test/masks/<stem>.png            smoke masks, nonzero = smoke, same size as the image
    test/cooccur/<stem>.png          optional co-occurring-object (chimney) masks

Every problem is reported as :class:`DatasetError` naming the offending path, before any array is
returned, so a study fails at start-up rather than halfway through training.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import numpy as np
from PIL import Image

from ablate import DATASETS, Dataset, Range, Split

Positive = Annotated[int, Range(low=1)]

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class DatasetError(ValueError):
    """A folder dataset is missing, incomplete or inconsistent; the message names the path."""

    def __init__(self, message: str) -> None:
        super().__init__(f"folder dataset: {message}")


def _open(path: Path, what: str) -> Image.Image:
    """Fully decode ``path`` so truncated files fail here rather than later."""
    if not path.is_file():
        raise DatasetError(f"missing {what} {path}")
    try:
        with Image.open(path) as img:
            img.load()
            return img.copy()
    except (OSError, SyntaxError, ValueError) as exc:  # PIL signals corrupt files with all three
        raise DatasetError(f"cannot read {what} {path}: {exc}") from None


def _binary(mask: Image.Image) -> np.ndarray:
    """Bool array of the nonzero pixels; colour masks count a pixel if any channel is nonzero."""
    if mask.mode not in ("1", "L", "P", "I", "I;16", "F"):
        mask = mask.convert("RGB")  # drops alpha, which says nothing about the class
    array = np.asarray(mask)
    return array.any(axis=-1) if array.ndim == 3 else array != 0


def _load_mask(path: Path, image: Image.Image) -> np.ndarray:
    """The binary mask at ``path``, which must have the size of ``image``."""
    mask = _open(path, "mask")
    if mask.size != image.size:
        raise DatasetError(f"mask {path} is {mask.width}x{mask.height} but its image is {image.width}x{image.height}")
    return _binary(mask)


def _resize_image(img: Image.Image, size: int) -> np.ndarray:
    if img.mode.startswith("I"):  # 16-bit (or 32-bit integer) greys: PIL's convert("RGB") saturates them to white
        img = Image.fromarray((np.asarray(img, dtype=np.float64) / 257).clip(0, 255).astype(np.uint8))
    return np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def _resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    img = Image.fromarray(mask.astype(np.uint8))
    return np.asarray(img.resize((size, size), Image.Resampling.NEAREST), dtype=np.uint8)


def _require_dir(path: Path) -> Path:
    if not path.is_dir():
        raise DatasetError(f"missing folder {path}")
    return path


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES)


def _labelled_items(root: Path, split: str, csv_file: str | None, classes: tuple[str, ...]) -> list[tuple[Path, int]]:
    """(image path, class index) for every image of ``split``, from the CSV or the class sub-folders."""
    folder = _require_dir(root / split)
    if csv_file is None:
        return [
            (path, index) for index, name in enumerate(classes) for path in _image_files(_require_dir(folder / name))
        ]
    csv_path = Path(csv_file) if Path(csv_file).is_absolute() else root / csv_file
    if not csv_path.is_file():
        raise DatasetError(f"missing train CSV {csv_path}")
    allowed = {**{name: i for i, name in enumerate(classes)}, **{str(i): i for i in range(len(classes))}}
    items = []
    with csv_path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"image", "label"} <= set(reader.fieldnames):
            raise DatasetError(f"{csv_path} needs a header row with columns 'image' and 'label'")
        for row in reader:
            label = (row["label"] or "").strip()
            if label not in allowed:
                choices = ", ".join(allowed)
                raise DatasetError(f"{csv_path} line {reader.line_num}: label {label!r} is not one of {choices}")
            items.append((folder / (row["image"] or "").strip(), allowed[label]))
    return items


def _tiles(height: int, width: int, tile: int | None, stride: int | None) -> list[tuple[int, int, int, int]]:
    """(top, left, bottom, right) boxes covering the image; the last row/column is aligned to the edge.

    Without ``tile`` (or where the image is smaller than the tile) a dimension is taken whole.
    """

    def starts(length: int) -> list[int]:
        if tile is None or length <= tile:
            return [0]
        positions = list(range(0, length - tile + 1, stride))
        return positions if positions[-1] == length - tile else [*positions, length - tile]

    th, tw = (height, width) if tile is None else (min(tile, height), min(tile, width))
    return [(y, x, y + th, x + tw) for y in starts(height) for x in starts(width)]


def _check_params(classes: Sequence[str], tile: int | None, tile_stride: int | None) -> None:
    """What the annotations of :func:`folder` cannot say (the registry checks types and bounds)."""
    if (
        isinstance(classes, str)
        or len(classes) != 2
        or len(set(classes)) != 2
        or not all(isinstance(c, str) and c for c in classes)
    ):
        raise DatasetError(f"classes must be two distinct names [no-smoke, smoke], got {classes!r}")
    if tile is None and tile_stride is not None:
        raise DatasetError("tile_stride needs tile")


@DATASETS.register("folder")
def folder(
    root: str,
    image_size: Annotated[int, Range(low=8)] = 224,
    train_csv: str | None = None,
    classes: Sequence[str] = ("no_smoke", "smoke"),
    tile: Positive | None = None,
    tile_stride: Positive | None = None,
    min_smoke_fraction: Annotated[float, Range(0, 1)] = 0.0,
    max_tiles_per_image: Positive | None = None,
    object_name: str = "co-occurring object",
    *,
    cache_dir: Path | None = None,
) -> Dataset:
    """Images from a folder: train/<class>/ (or a CSV) with labels, test/images + test/masks.

    Train images are resized whole. Test images are cut into tiles (like the paper's 512 px
    crops of 1920x1280 frames) before resizing; a tile's label is 1 if its mask has any smoke.

    Args:
        root: Dataset folder (layout in the module docstring).
        image_size: Side of the square images after resizing (bilinear images, nearest masks).
        train_csv: CSV with columns ``image,label`` (path relative to ``root``, or absolute); image
            paths are relative to ``root/train``, labels a class name or its index. None: use
            the class sub-folders of ``root/train``.
        classes: The two class names, no-smoke first (index 1 = smoke).
        tile: Tile side in pixels for the test images; None keeps whole images.
        tile_stride: Step between tiles (default ``tile``, i.e. no overlap).
        min_smoke_fraction: Keep only test tiles with at least this fraction of smoke pixels
            (0 keeps all; a tiny positive value keeps the smoke-containing ones, as in the paper).
        max_tiles_per_image: Keep at most this many tiles per image, those with most smoke first.
        object_name: What ``test/cooccur`` masks mark (e.g. ``chimney``, ``water``), as the report names it;
            the class the masks mark is named by ``classes[1]``.
        cache_dir: Harness cache folder (injected; unused, the files are read directly).
    """
    _check_params(classes, tile, tile_stride)
    classes = tuple(classes)
    root_path = _require_dir(Path(root))

    train = _labelled_split(root_path, "train", train_csv, classes, image_size)
    val = _labelled_split(root_path, "val", None, classes, image_size) if (root_path / "val").is_dir() else None

    test_dir = _require_dir(root_path / "test")
    image_dir, mask_dir = _require_dir(test_dir / "images"), _require_dir(test_dir / "masks")
    cooccur_dir = test_dir / "cooccur" if (test_dir / "cooccur").is_dir() else None
    paths = _image_files(image_dir)
    if not paths:
        raise DatasetError(f"no test images in {image_dir}")
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        dup = next(s for s in stems if stems.count(s) > 1)
        raise DatasetError(f"two test images in {image_dir} share the stem {dup!r}")

    images, masks, cooccurs, names = [], [], [], []
    for path in paths:
        img = _open(path, "image")
        smoke = _load_mask(mask_dir / f"{path.stem}.png", img)
        chimney = None if cooccur_dir is None else _load_mask(cooccur_dir / f"{path.stem}.png", img)
        boxes = _tiles(img.height, img.width, tile, tile_stride or tile)
        amounts = [int(smoke[top:bottom, left:right].sum()) for top, left, bottom, right in boxes]
        keep = [
            i
            for i, (top, left, bottom, right) in enumerate(boxes)
            if amounts[i] >= min_smoke_fraction * (bottom - top) * (right - left)
        ]
        if max_tiles_per_image is not None:
            # Most smoke first; the stable sort breaks ties by raster order, so the choice is deterministic.
            keep = sorted(sorted(keep, key=lambda i: -amounts[i])[:max_tiles_per_image])
        for i in keep:
            top, left, bottom, right = boxes[i]
            images.append(_resize_image(img.crop((left, top, right, bottom)), image_size))
            masks.append(_resize_mask(smoke[top:bottom, left:right], image_size))
            if chimney is not None:
                cooccurs.append(_resize_mask(chimney[top:bottom, left:right], image_size))
            names.append(path.stem if len(boxes) == 1 else f"{path.stem}@{top},{left}")
    if not images:
        raise DatasetError(f"no test tiles in {image_dir} have min_smoke_fraction={min_smoke_fraction}")

    test_masks = np.stack(masks)
    if not test_masks.any():  # every smoke IoU would be undefined, and accuracy would be that of no-smoke images
        raise DatasetError(
            f"no test mask in {mask_dir} marks any smoke (a nonzero pixel of its grey or colour channels; alpha is "
            "ignored): the test split needs smoke images"
        )
    test = Split(
        images=np.stack(images),
        # From the resized mask, so a tile whose few smoke pixels vanish in resizing is not labelled smoke.
        labels=test_masks.reshape(len(test_masks), -1).any(axis=1).astype(np.int64),
        masks=test_masks,
        cooccur_masks=np.stack(cooccurs) if cooccur_dir is not None else None,
        names=names,
    )
    return Dataset(train=train, test=test, val=val, class_name=classes[1], object_name=object_name)


def _labelled_split(root: Path, split: str, csv_file: str | None, classes: tuple[str, ...], size: int) -> Split:
    """The images of ``root/split`` with their class labels, resized whole, and their masks where
    ``root/split/masks`` exists (one per image, at the image's path below the split with a .png suffix)."""
    items = _labelled_items(root, split, csv_file, classes)
    if not items:
        raise DatasetError(f"no {split} images in {root / split}")
    found = {label for _, label in items}
    for index, name in enumerate(classes):
        if index not in found:  # a classifier of one class learns nothing, and its CAMs mean nothing
            where = f"{csv_file} lists" if csv_file and split == "train" else f"{root / split / name} holds"
            raise DatasetError(
                f"no {split} images of class '{name}': {where} none (image files: {', '.join(_IMAGE_SUFFIXES)})"
            )
    mask_dir = root / split / "masks"
    images, masks = [], []
    for path, _ in items:
        image = _open(path, "image")
        images.append(_resize_image(image, size))
        if mask_dir.is_dir():
            mask_path = (mask_dir / path.relative_to(root / split)).with_suffix(".png")
            masks.append(_resize_mask(_load_mask(mask_path, image), size))
    return Split(
        images=np.stack(images),
        labels=np.array([label for _, label in items], dtype=np.int64),
        masks=np.stack(masks) if masks else None,
        names=[os.path.relpath(path, root) for path, _ in items],
    )
