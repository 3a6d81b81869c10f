"""Data sets: a registry of named sources, each declaring its input shape and classes, and seeded splits.

load_splits returns uint8 N,C,H,W images and int64 labels as train / validation (held out of the training
set, for selection during search) / test (kept apart for the final report).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.data.download import Resource, default_data_dir, fetch
from nas.data.formats import DatasetError, class_folders, read_cifar, read_image_folder, read_mnist
from nas.registry import Registry

__all__ = ["DATASETS", "Dataset", "DatasetError", "DatasetInfo", "Resource", "Splits", "dataset_info",
           "default_data_dir", "known_datasets", "load_splits", "register_dataset", "split_indices"]

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # train_x, train_y, test_x, test_y

# Sources without a published test set hold one out with this fixed seed, so the test set does not move
# with the search seed and final reports stay comparable across runs.
TEST_SEED = 0
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DatasetInfo:
    """What a data set binds in a search space: input shape (C,H,W), classes and per-channel mean/std in [0,1]."""

    name: str
    input_shape: tuple[int, int, int]
    classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True, eq=False)
class Splits:
    """Train / validation / test arrays: images uint8 N,C,H,W, labels int64 N."""

    info: DatasetInfo
    train_x: np.ndarray = field(repr=False)
    train_y: np.ndarray = field(repr=False)
    val_x: np.ndarray = field(repr=False)
    val_y: np.ndarray = field(repr=False)
    test_x: np.ndarray = field(repr=False)
    test_y: np.ndarray = field(repr=False)

    def sizes(self) -> tuple[int, int, int]:
        """Number of (train, validation, test) examples."""
        return len(self.train_y), len(self.val_y), len(self.test_y)


class Dataset:
    """A registered data-set source: declares its DatasetInfo and loads raw train and test arrays."""

    name: str = ""
    options: tuple[str, ...] = ()  # the data-set specific **options it accepts

    def info(self, data_dir: Path | None, **options: Any) -> DatasetInfo:
        """Shape, classes and normalisation, without loading or downloading."""
        raise NotImplementedError

    def load(self, data_dir: Path | None, download: bool, **options: Any) -> Arrays:
        """(train_x, train_y, test_x, test_y) before the validation hold-out."""
        raise NotImplementedError


DATASETS: Registry[Dataset] = Registry("data set")  # every data set is defined in this module


def register_dataset(name: str) -> Callable[[type[Dataset]], type[Dataset]]:
    """Class decorator: register an instance of a Dataset subclass under name."""
    def register(cls: type[Dataset]) -> type[Dataset]:
        cls.name = name
        DATASETS.add(name, cls())
        return cls
    return register


def known_datasets() -> list[str]:
    """Sorted names of the registered data sets."""
    return list(DATASETS)


def _lookup(name: str, options: dict[str, Any]) -> Dataset:
    """The registered data set called name, after checking its options."""
    if name not in DATASETS:
        raise DatasetError(f"unknown data set {name!r}; known: {', '.join(known_datasets())}")
    dataset = DATASETS[name]
    unknown = sorted(set(options) - set(dataset.options))
    if unknown:
        takes = ", ".join(dataset.options) or "none"
        raise DatasetError(f"data set {name!r} has no option {', '.join(unknown)}; its options: {takes}")
    return dataset


def dataset_info(name: str, *, data_dir: str | Path | None = None, **options: Any) -> DatasetInfo:
    """Input shape, classes and mean/std of a data set; cheap (imagefolder lists its class folders)."""
    return _lookup(name, options).info(Path(data_dir) if data_dir else None, **options)


def load_splits(name: str, *, data_dir: str | Path | None = None, val_fraction: float = 0.1,
                train_fraction: float = 1.0, seed: int = 0, download: bool = True, **options: Any) -> Splits:
    """Load a data set and split it deterministically under seed; raises DatasetError with a one-line message."""
    dataset = _lookup(name, options)
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if not 0.0 < train_fraction <= 1.0:
        raise DatasetError(f"train_fraction must be in (0, 1], got {train_fraction}")
    directory = Path(data_dir).expanduser() if data_dir else None
    info = dataset.info(directory, **options)
    train_x, train_y, test_x, test_y = dataset.load(directory, download, **options)
    # Guard the contract here, once, so no source can hand back a wrong-shaped or mislabelled data set.
    train_x, train_y = _checked(info, "training", train_x, train_y)
    test_x, test_y = _checked(info, "test", test_x, test_y)
    train, val = split_indices(len(train_y), val_fraction, train_fraction, seed)
    return Splits(info, train_x[train], train_y[train], train_x[val], train_y[val], test_x, test_y)


def split_indices(n: int, val_fraction: float, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) indices into n examples: val held out by a seeded permutation, train subsampled.

    The validation set depends only on (n, val_fraction, seed), so proxy runs with a smaller train_fraction
    are judged on the same examples as full runs.
    """
    if n < 1:
        raise DatasetError("the training set is empty")
    order = np.random.default_rng(seed).permutation(n)
    n_val = 0 if val_fraction == 0 else min(n - 1, max(1, round(n * val_fraction)))
    val, rest = order[:n_val], order[n_val:]
    train = rest[:max(1, round(len(rest) * train_fraction))]
    return np.sort(train), np.sort(val)


def hold_out_test(x: np.ndarray, y: np.ndarray, test_fraction: float) -> Arrays:
    """Split a source without a published test set into (train, test) with the fixed TEST_SEED."""
    if not 0.0 < test_fraction < 1.0:
        raise DatasetError(f"test_fraction must be in (0, 1), got {test_fraction}")
    order = np.random.default_rng(TEST_SEED).permutation(len(y))
    n_test = min(len(y) - 1, max(1, round(len(y) * test_fraction)))
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    return x[train], y[train], x[test], y[test]


def _checked(info: DatasetInfo, what: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x, y as uint8 / int64 arrays, after checking they match info."""
    source = f"data set {info.name!r}"
    if x.dtype != np.uint8 or x.ndim != 4 or tuple(x.shape[1:]) != info.input_shape:
        raise DatasetError(f"{source}: {what} images are {x.dtype} {tuple(x.shape)}, expected uint8 "
                           f"N x {' x '.join(map(str, info.input_shape))}")
    y = np.asarray(y, np.int64)
    if y.shape != (len(x),):
        raise DatasetError(f"{source}: {len(x)} {what} images but labels of shape {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= info.classes):
        raise DatasetError(f"{source}: {what} labels span {y.min()}..{y.max()}, expected 0..{info.classes - 1}")
    return x, y


def _positive_ints(name: str, value: Any, count: int) -> tuple[int, ...]:
    """An option as count positive ints (a scalar is repeated); DatasetError otherwise."""
    try:
        # Strings come from command lines and YAML: "32", "3x32x32", "3,32,32".
        values = value.replace(",", "x").split("x") if isinstance(value, str) else value
        values = list(values) if isinstance(values, (list, tuple)) else [values]
        values = values * count if len(values) == 1 else values
        ints = tuple(int(v) for v in values)
        valid = len(ints) == count and all(v > 0 and v == float(raw) for v, raw in zip(ints, values))
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise DatasetError(f"option {name} must be {count} positive integer{'s' if count > 1 else ''}, got {value!r}")
    return ints


class Published(Dataset):
    """A data set distributed as files at public URLs, cached under <data_dir>/<name>/."""

    resources: tuple[Resource, ...] = ()
    options = ("verify",)
    shape: tuple[int, int, int] = (0, 0, 0)
    classes = 0
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def info(self, data_dir: Path | None, **options: Any) -> DatasetInfo:
        """The published data set's fixed shape, classes and statistics."""
        return DatasetInfo(self.name, self.shape, self.classes, self.mean, self.std)

    def files(self, data_dir: Path | None, download: bool, verify: bool) -> list[Path]:
        """The data set's files, fetched into the cache when absent."""
        directory = (data_dir or default_data_dir()) / self.name
        return [fetch(resource, directory, download=download, verify=verify) for resource in self.resources]


@register_dataset("cifar10")
class Cifar10(Published):
    """CIFAR-10: 60k 32x32 colour images in 10 classes (Krizhevsky, 2009)."""

    resources = (Resource("cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                          "c58f30108f718f92721af3b95e74349a"),)
    shape, classes = (3, 32, 32), 10
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)

    def load(self, data_dir: Path | None, download: bool, verify: bool = True) -> Arrays:
        """Read data_batch_1..5 and test_batch."""
        (archive,) = self.files(data_dir, download, verify)
        return read_cifar(archive, b"labels", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"])


@register_dataset("cifar100")
class Cifar100(Published):
    """CIFAR-100: 60k 32x32 colour images in 100 fine classes."""

    resources = (Resource("cifar-100-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                          "eb9058c3a382ffc7106e4002c42a8d85"),)
    shape, classes = (3, 32, 32), 100
    mean, std = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)

    def load(self, data_dir: Path | None, download: bool, verify: bool = True) -> Arrays:
        """Read train and test with their fine labels."""
        (archive,) = self.files(data_dir, download, verify)
        return read_cifar(archive, b"fine_labels", ["train"], ["test"])


def _idx_resources(base_url: str, md5s: tuple[str, str, str, str]) -> tuple[Resource, ...]:
    """The four gzipped IDX files of an MNIST-format data set: train images/labels, test images/labels."""
    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    return tuple(Resource(name, base_url + name, md5) for name, md5 in zip(names, md5s))


class IdxDataset(Published):
    """An MNIST-format data set: 28x28 grey images in 10 classes as four gzipped IDX files."""

    shape, classes = (1, 28, 28), 10

    def load(self, data_dir: Path | None, download: bool, verify: bool = True) -> Arrays:
        """Read the train and t10k image/label pairs."""
        train_images, train_labels, test_images, test_labels = self.files(data_dir, download, verify)
        return (*read_mnist(train_images, train_labels), *read_mnist(test_images, test_labels))


@register_dataset("mnist")
class Mnist(IdxDataset):
    """MNIST handwritten digits (LeCun et al.), from the PyTorch S3 mirror."""

    resources = _idx_resources("https://ossci-datasets.s3.amazonaws.com/mnist/", (
        "f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
        "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"))
    mean, std = (0.1307,), (0.3081,)


@register_dataset("fashion_mnist")
class FashionMnist(IdxDataset):
    """Fashion-MNIST clothing images (Xiao et al., 2017), from Zalando's S3 bucket."""

    resources = _idx_resources("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
        "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83fd310"))
    mean, std = (0.2860,), (0.3530,)


@register_dataset("digits")
class Digits(Dataset):
    """The 8x8 handwritten digits shipped inside scikit-learn: 1797 images, works offline."""

    options = ("test_fraction",)

    def info(self, data_dir: Path | None, **options: Any) -> DatasetInfo:
        """1x8x8 grey images, 10 classes; mean/std measured on the 0..255 scaled data."""
        return DatasetInfo(self.name, (1, 8, 8), 10, (0.3053,), (0.3759,))

    def load(self, data_dir: Path | None, download: bool, test_fraction: float = 0.2) -> Arrays:
        """Scale the 0..16 values to 0..255 and hold out a fixed test set."""
        from sklearn.datasets import load_digits  # deferred: importing scikit-learn costs about a second

        bunch = load_digits()
        images = np.rint(bunch.data * (255 / 16)).astype(np.uint8).reshape(-1, 1, 8, 8)
        return hold_out_test(images, bunch.target.astype(np.int64), test_fraction)


@register_dataset("synthetic")
class Synthetic(Dataset):
    """Deterministic random images whose per-class channel means and patterns make them learnable."""

    options = ("n_train", "n_test", "shape", "classes", "data_seed", "noise")

    def info(self, data_dir: Path | None, shape: Any = (3, 32, 32), classes: int = 10,
             **options: Any) -> DatasetInfo:
        """The configured shape and classes; mean/std approximate the generator's."""
        channels, height, width = _positive_ints("shape", shape, 3)
        (classes,) = _positive_ints("classes", classes, 1)
        return DatasetInfo(self.name, (channels, height, width), classes, (0.5,) * channels, (0.25,) * channels)

    def load(self, data_dir: Path | None, download: bool, n_train: int = 512, n_test: int = 128,
             shape: Any = (3, 32, 32), classes: int = 10, data_seed: int = 0, noise: float = 32.0) -> Arrays:
        """Draw train and test from the same class-conditional distribution."""
        info = self.info(data_dir, shape=shape, classes=classes)
        (n_train,), (n_test,) = _positive_ints("n_train", n_train, 1), _positive_ints("n_test", n_test, 1)
        rng = np.random.default_rng(data_seed)
        # Each channel gets the class levels in its own order: classes differ in mean colour (visible after
        # global pooling) and in a fixed texture (visible to convolutions).
        levels = np.linspace(48.0, 208.0, info.classes)
        means = np.stack([rng.permutation(levels) for _ in range(info.input_shape[0])], axis=1)
        prototypes = means[:, :, None, None] + rng.normal(0.0, 24.0, (info.classes, *info.input_shape))

        def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
            labels = rng.permutation(np.arange(n) % info.classes)
            pixels = prototypes[labels] + rng.normal(0.0, noise, (n, *info.input_shape))
            return np.clip(np.rint(pixels), 0, 255).astype(np.uint8), labels.astype(np.int64)

        return (*draw(n_train), *draw(n_test))


@register_dataset("imagefolder")
class ImageFolder(Dataset):
    """A user's class-per-folder images: root/<class>/*.png, or root/train/<class> with root/test (or val)."""

    options = ("path", "size", "channels", "test_fraction")

    def info(self, data_dir: Path | None, path: str | Path | None = None, size: Any = 32, channels: int = 3,
             **options: Any) -> DatasetInfo:
        """channels x size input; classes are the sorted class-folder names; ImageNet mean/std."""
        height, width = _positive_ints("size", size, 2)
        if channels not in (1, 3):
            raise DatasetError(f"option channels must be 1 (grey) or 3 (RGB), got {channels!r}")
        classes = class_folders(self._layout(data_dir, path)[0])
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.449,), (0.226,))
        return DatasetInfo(self.name, (channels, height, width), len(classes), mean, std)

    def load(self, data_dir: Path | None, download: bool, path: str | Path | None = None, size: Any = 32,
             channels: int = 3, test_fraction: float = 0.2) -> Arrays:
        """Read and resize every image; use the test/ (or val/) folder as test set, else hold one out."""
        size = _positive_ints("size", size, 2)
        train_root, test_root = self._layout(data_dir, path)
        classes = class_folders(train_root)
        train_x, train_y = read_image_folder(train_root, classes, size, channels)
        if test_root is None:
            return hold_out_test(train_x, train_y, test_fraction)
        return (train_x, train_y, *read_image_folder(test_root, classes, size, channels))

    @staticmethod
    def _layout(data_dir: Path | None, path: str | Path | None) -> tuple[Path, Path | None]:
        """(train root, test root or None) of the folder given by path, else by data_dir."""
        if path is None and data_dir is None:
            raise DatasetError("imagefolder needs its folder: pass path=... (or the data dir) pointing at "
                               "one sub-folder of images per class")
        root = Path(path if path is not None else data_dir).expanduser()
        for test_name in ("test", "val"):
            if (root / "train").is_dir() and (root / test_name).is_dir():
                return root / "train", root / test_name
        return root, None
