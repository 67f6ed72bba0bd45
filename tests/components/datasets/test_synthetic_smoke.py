"""The built-in synthetic smoke dataset: co-occurrence statistics, masks, determinism and caching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ablate.components.datasets.synthetic_smoke as synthetic_smoke
from ablate import DATASETS, Dataset, RegistryError, Split

SMALL = {"n_train": 24, "n_test": 12}


def _create(cache_dir: Path, **params: object) -> Dataset:
    return DATASETS.create("synthetic-smoke", cache_dir=cache_dir, **params)


def _cache_file(cache_dir: Path) -> Path:
    (path,) = (cache_dir / "datasets").glob("synthetic-smoke-*.npz")
    return path


def _chimney_accuracy(split: Split) -> float:
    """Accuracy of the shortcut classifier "a chimney is visible => smoke"."""
    has_chimney = split.cooccur_masks.reshape(len(split), -1).any(axis=1)
    return float(np.mean(has_chimney == (split.labels == 1)))


@pytest.fixture(scope="module")
def default(tmp_path_factory: pytest.TempPathFactory) -> tuple[Dataset, Path]:
    cache_dir = tmp_path_factory.mktemp("cache")
    return _create(cache_dir), cache_dir


def test_registered_with_description_and_params() -> None:
    entry = DATASETS.get("synthetic-smoke")
    assert entry.description.startswith("Synthetic industrial smoke scenes")
    assert [p.name for p in entry.params] == [
        "image_size",
        "n_train",
        "n_val",
        "n_test",
        "seed",
        "smoke_fraction",
        "train_chimney_with_smoke",
        "train_chimney_without_smoke",
        "cloud_rate",
    ]


def test_default_shapes_and_dtypes(default: tuple[Dataset, Path]) -> None:
    data, _ = default
    for split, n in ((data.train, 1600), (data.val, 200), (data.test, 320)):
        assert split.images.shape == (n, 64, 64, 3) and split.images.dtype == np.uint8
        assert split.masks.shape == split.cooccur_masks.shape == (n, 64, 64)
        assert set(np.unique(split.masks)) <= {0, 1} and set(np.unique(split.cooccur_masks)) <= {0, 1}
        assert split.labels.dtype == np.int64 and int(split.labels.sum()) == n // 2
        assert len(set(split.names)) == n
    assert (data.class_name, data.object_name) == ("smoke", "chimney")


def test_chimney_predicts_train_label_but_not_test_label(default: tuple[Dataset, Path]) -> None:
    data, _ = default
    assert _chimney_accuracy(data.train) >= 0.85
    assert _chimney_accuracy(data.test) <= 0.60


def test_test_split_has_all_four_combinations(default: tuple[Dataset, Path]) -> None:
    test = default[0].test
    chimney = test.cooccur_masks.reshape(len(test), -1).any(axis=1)
    counts = {(s, c): int(np.sum((test.labels == s) & (chimney == c))) for s in (0, 1) for c in (False, True)}
    assert all(count == 80 for count in counts.values()), counts


def test_val_split_is_drawn_like_train(default: tuple[Dataset, Path]) -> None:
    data, _ = default
    assert _chimney_accuracy(data.val) >= 0.85
    assert not np.array_equal(data.val.images[:10], data.train.images[:10])


def test_val_size_leaves_train_and_test_unchanged(tmp_path: Path) -> None:
    with_val, without = _create(tmp_path, **SMALL, n_val=8), _create(tmp_path, **SMALL, n_val=0)
    assert without.val is None and len(with_val.val) == 8
    np.testing.assert_array_equal(with_val.train.images, without.train.images)
    np.testing.assert_array_equal(with_val.test.images, without.test.images)


def test_every_train_plume_sits_on_a_chimney(default: tuple[Dataset, Path]) -> None:
    train = default[0].train
    smoke = train.labels == 1
    assert train.cooccur_masks[smoke].reshape(int(smoke.sum()), -1).any(axis=1).all()


def test_smoke_pixels_exactly_in_smoke_images(default: tuple[Dataset, Path]) -> None:
    data, _ = default
    for split in (data.train, data.test):
        per_image = split.masks.reshape(len(split), -1).sum(axis=1)
        assert (per_image[split.labels == 1] > 0).all()
        assert (per_image[split.labels == 0] == 0).all()
        fraction = split.masks[split.labels == 1].mean()
        assert 0.03 < fraction < 0.4  # plumes are visible but do not fill the frame


def test_clouds_in_some_negative_images(default: tuple[Dataset, Path]) -> None:
    data, cache_dir = default
    with np.load(_cache_file(cache_dir)) as npz:
        flags = {split: npz[f"{split}_clouds"] for split in ("train", "test")}
    for split, labels in (("train", data.train.labels), ("test", data.test.labels)):
        assert flags[split][labels == 0].any() and not flags[split][labels == 0].all()
    # Clouds are bright blobs in the sky: cloudy smoke-free images have far more near-white sky pixels.
    negative, clouds = data.train.labels == 0, flags["train"]
    bright = (data.train.images[:, :20].min(axis=-1) > 180).mean(axis=(1, 2))
    assert bright[negative & clouds].mean() > 2 * bright[negative & ~clouds].mean()


def test_same_seed_is_byte_identical_and_other_seed_differs(tmp_path: Path) -> None:
    first = _create(tmp_path / "a", **SMALL)
    second = _create(tmp_path / "b", **SMALL)
    assert _cache_file(tmp_path / "a").read_bytes() == _cache_file(tmp_path / "b").read_bytes()
    assert first.fingerprint == second.fingerprint
    other = _create(tmp_path / "c", seed=1, **SMALL)
    assert other.fingerprint != first.fingerprint
    assert not np.array_equal(other.train.images, first.train.images)


def test_cache_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _create(tmp_path, **SMALL)
    path = _cache_file(tmp_path)
    mtime = path.stat().st_mtime_ns

    def fail(**_: object) -> None:
        raise AssertionError("regenerated although the cache file is valid")

    monkeypatch.setattr(synthetic_smoke, "_generate", fail)
    again = _create(tmp_path, **SMALL)
    assert again.fingerprint == first.fingerprint
    assert path.stat().st_mtime_ns == mtime
    assert [p.name for p in (tmp_path / "datasets").iterdir()] == [path.name]  # no temp files left


def test_other_params_use_another_cache_file(tmp_path: Path) -> None:
    _create(tmp_path, **SMALL)
    _create(tmp_path, cloud_rate=0.0, **SMALL)
    assert len(list((tmp_path / "datasets").glob("synthetic-smoke-*.npz"))) == 2


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong_fingerprint"])
def test_damaged_cache_is_regenerated(tmp_path: Path, damage: str) -> None:
    original = _create(tmp_path, **SMALL)
    path = _cache_file(tmp_path)
    content = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(content[: len(content) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a zip file")
    else:  # a readable file whose arrays do not match the stored fingerprint
        with np.load(path) as npz:
            arrays = {key: npz[key] for key in npz.files}
        arrays["test_images"] = arrays["test_images"] ^ 1
        synthetic_smoke._write_npz(path, arrays)
    regenerated = _create(tmp_path, **SMALL)
    assert regenerated.fingerprint == original.fingerprint
    assert path.read_bytes() == content


def test_larger_images(tmp_path: Path) -> None:
    data = _create(tmp_path, image_size=128, n_train=8, n_test=8)
    assert data.train.images.shape == (8, 128, 128, 3)
    assert data.test.masks.shape == data.test.cooccur_masks.shape == (8, 128, 128)
    assert (data.test.masks[data.test.labels == 1].reshape(-1, 128 * 128).sum(axis=1) > 0).all()


def test_smallest_images_still_have_smoke(tmp_path: Path) -> None:
    data = _create(tmp_path, image_size=32, n_train=40, n_test=40, seed=3)
    for split in (data.train, data.test):
        assert (split.masks[split.labels == 1].reshape(-1, 32 * 32).sum(axis=1) > 0).all()


def test_chimney_rates_change_train_coupling(tmp_path: Path) -> None:
    data = _create(tmp_path, n_train=200, n_test=8, train_chimney_with_smoke=0.5, train_chimney_without_smoke=0.5)
    assert _chimney_accuracy(data.train) < 0.65


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"image_size": 16}, "image_size"),
        ({"image_size": 1024}, "image_size"),
        ({"n_train": 1}, "n_train"),
        ({"n_test": 3}, "n_test"),
        ({"seed": -1}, "seed"),
        ({"smoke_fraction": 1.5}, "smoke_fraction"),
        ({"smoke_fraction": 0.0}, "smoke_fraction"),
        ({"train_chimney_with_smoke": -0.1}, "train_chimney_with_smoke"),
        ({"train_chimney_without_smoke": 2.0}, "train_chimney_without_smoke"),
        ({"cloud_rate": 1.1}, "cloud_rate"),
    ],
)
def test_bad_params_name_the_parameter(tmp_path: Path, params: dict[str, object], name: str) -> None:
    with pytest.raises((ValueError, RegistryError), match=name):  # bounds: the registry; split sizes: the factory
        _create(tmp_path, **params)
    assert not (tmp_path / "datasets").exists()
