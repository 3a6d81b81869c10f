"""The data-set layer: real file formats built in tmp_path, checksums, downloads, errors and seeded splits."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import nas.data as data
from nas.data import DatasetError, DatasetInfo, Resource, load_splits, split_indices
from nas.data.download import default_data_dir

CIFAR10_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Only file:// URLs may be opened; anything else fails as if offline."""
    real_urlopen = urllib.request.urlopen

    def urlopen(url, *args, **kwargs):
        if str(url).startswith("file:"):
            return real_urlopen(url, *args, **kwargs)
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)


class Py2Pickler(pickle._Pickler):
    """Writes str and bytes as (SHORT_)BINSTRING, like the Python 2 cPickle that wrote the published batches."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj):
        header = pickle.SHORT_BINSTRING + bytes([len(obj)]) if len(obj) < 256 else \
            pickle.BINSTRING + struct.pack("<i", len(obj))
        self.write(header + obj)
        self.memoize(obj)

    def save_str(self, obj):
        self.save_bytes(obj.encode("latin1"))

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def py2_pickle(obj) -> bytes:
    """obj pickled as Python 2 with numpy 1.x would have (module numpy.core.multiarray)."""
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def write_tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    """A gzipped tar holding members (name -> content)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def cifar_batch(rng, n: int, classes: int, label_key: str = "labels") -> tuple[dict, np.ndarray, np.ndarray]:
    """A batch dict in the published layout plus the images (N,3,32,32) and labels it encodes."""
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, classes, n)
    batch = {"batch_label": "training batch", "data": images.reshape(n, 3072), label_key: labels.tolist(),
             "filenames": [f"img_{i}.png" for i in range(n)]}
    return batch, images, labels


def make_cifar10(root: Path, n: int = 4) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A fake cifar-10-python.tar.gz in root/cifar10 with Python-2-style pickled batches."""
    rng = np.random.default_rng(1)
    members, train_x, train_y = {}, [], []
    for name in CIFAR10_TRAIN:
        batch, x, y = cifar_batch(rng, n, 10)
        members[f"cifar-10-batches-py/{name}"] = py2_pickle(batch)
        train_x.append(x)
        train_y.append(y)
    batch, test_x, test_y = cifar_batch(rng, n, 10)
    members["cifar-10-batches-py/test_batch"] = py2_pickle(batch)
    members["cifar-10-batches-py/batches.meta"] = py2_pickle({"label_names": ["airplane"] * 10})
    archive = write_tar_gz(root / "cifar10" / "cifar-10-python.tar.gz", members)
    return archive, np.concatenate(train_x), np.concatenate(train_y), test_x, test_y


def write_idx(path: Path, array: np.ndarray, magic: int | None = None, payload: bytes | None = None) -> Path:
    """A gzipped unsigned-byte IDX file; magic and payload can be overridden to corrupt it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    magic = 0x0800 | array.ndim if magic is None else magic
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + (array.astype(np.uint8).tobytes() if payload is None else payload))
    return path


def make_mnist(folder: Path, n_train: int = 12, n_test: int = 6) -> tuple[np.ndarray, ...]:
    """The four MNIST IDX files in folder; returns train_x, train_y, test_x, test_y as written."""
    rng = np.random.default_rng(2)
    arrays = (rng.integers(0, 256, (n_train, 28, 28)), rng.integers(0, 10, n_train),
              rng.integers(0, 256, (n_test, 28, 28)), rng.integers(0, 10, n_test))
    for name, array in zip(MNIST_FILES, arrays):
        write_idx(folder / name, array)
    return arrays


def assert_one_line(error: pytest.ExceptionInfo, *fragments: object) -> str:
    """The DatasetError message is one line and mentions each fragment."""
    message = str(error.value)
    assert "\n" not in message and message.strip() == message
    for fragment in fragments:
        assert str(fragment) in message, message
    return message


# --- CIFAR ---------------------------------------------------------------------------------------------------


def test_cifar10_reads_python2_batches(tmp_path):
    archive, train_x, train_y, test_x, test_y = make_cifar10(tmp_path)
    splits = load_splits("cifar10", data_dir=tmp_path, download=False, verify=False, val_fraction=0.25)
    assert splits.info == data.dataset_info("cifar10")
    assert splits.info.input_shape == (3, 32, 32) and splits.info.classes == 10
    assert splits.sizes() == (15, 5, 4)
    assert np.array_equal(splits.test_x, test_x) and np.array_equal(splits.test_y, test_y)
    assert splits.train_x.dtype == np.uint8 and splits.train_y.dtype == np.int64
    # Train and validation together are exactly the five batches, pixels in C,H,W order.
    merged = np.concatenate([splits.train_x, splits.val_x]).reshape(20, -1)
    order = np.lexsort(merged.T)
    expected = train_x.reshape(20, -1)
    assert np.array_equal(merged[order], expected[np.lexsort(expected.T)])
    first = int(np.flatnonzero((train_x == splits.train_x[0]).all(axis=(1, 2, 3)))[0])
    assert splits.train_y[0] == train_y[first]


def make_cifar100(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A CIFAR-100 archive of 6 train and 3 test images under root/cifar100; returns its arrays."""
    rng = np.random.default_rng(3)
    train, train_x, fine = cifar_batch(rng, 6, 100, label_key="fine_labels")
    train["coarse_labels"] = [99 - int(v) for v in fine]
    test, test_x, test_fine = cifar_batch(rng, 3, 100, label_key="fine_labels")
    test["coarse_labels"] = [0] * 3
    # Python 3 writes this archive (str keys, protocol 4): the reader accepts both.
    write_tar_gz(root / "cifar100" / "cifar-100-python.tar.gz",
                 {"cifar-100-python/train": pickle.dumps(train, protocol=4),
                  "cifar-100-python/test": pickle.dumps(test, protocol=4)})
    return train_x, fine, test_x, test_fine


def test_cifar100_uses_fine_labels(tmp_path):
    train_x, fine, test_x, test_fine = make_cifar100(tmp_path)
    splits = load_splits("cifar100", data_dir=tmp_path, download=False, verify=False, val_fraction=0.0)
    assert splits.info.classes == 100 and splits.sizes() == (6, 0, 3)
    assert np.array_equal(splits.train_y, fine) and np.array_equal(splits.train_x, train_x)
    assert np.array_equal(splits.test_y, test_fine) and np.array_equal(splits.test_x, test_x)


def test_published_archive_is_checked_against_its_md5(tmp_path):
    archive, *_ = make_cifar10(tmp_path)
    with pytest.raises(DatasetError) as error:
        load_splits("cifar10", data_dir=tmp_path, download=False)
    message = assert_one_line(error, archive, "c58f30108f718f92721af3b95e74349a", "delete")
    assert hashlib.md5(archive.read_bytes()).hexdigest() in message


def test_missing_archive_says_where_and_how(tmp_path):
    with pytest.raises(DatasetError) as error:
        load_splits("cifar10", data_dir=tmp_path, download=False)
    assert_one_line(error, tmp_path / "cifar10" / "cifar-10-python.tar.gz",
                    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "by hand")


def test_offline_download_fails_with_one_line(tmp_path):
    with pytest.raises(DatasetError) as error:
        load_splits("cifar100", data_dir=tmp_path)
    assert_one_line(error, "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                    tmp_path / "cifar100" / "cifar-100-python.tar.gz", "by hand", "network disabled")
    assert list((tmp_path / "cifar100").iterdir()) == []  # no partial file left behind


def test_truncated_archive(tmp_path):
    archive, *_ = make_cifar10(tmp_path)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DatasetError) as error:
        load_splits("cifar10", data_dir=tmp_path, download=False, verify=False)
    assert_one_line(error, archive, "truncated or corrupt")


def test_archive_without_the_batches(tmp_path):
    archive = write_tar_gz(tmp_path / "cifar10" / "cifar-10-python.tar.gz", {"readme.html": b"hello"})
    with pytest.raises(DatasetError) as error:
        load_splits("cifar10", data_dir=tmp_path, download=False, verify=False)
    assert_one_line(error, archive, "data_batch_1", "test_batch")


@pytest.mark.parametrize("batch, complaint", [
    ({"data": np.zeros((2, 3072), np.uint8), "fine_labels": [0, 1]}, "needs keys"),
    ({"data": np.zeros((2, 3000), np.uint8), "labels": [0, 1]}, "pixel bytes"),
    ({"data": np.zeros((2, 3072), np.float32), "labels": [0, 1]}, "uint8"),
    ({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}, "labels span"),
    ([1, 2, 3], "needs keys"),
])
def test_bad_batches_are_refused(tmp_path, batch, complaint):
    good = py2_pickle({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]})
    members = {f"cifar-10-batches-py/{name}": good for name in CIFAR10_TRAIN}
    members["cifar-10-batches-py/test_batch"] = py2_pickle(batch)
    write_tar_gz(tmp_path / "cifar10" / "cifar-10-python.tar.gz", members)
    with pytest.raises(DatasetError) as error:
        load_splits("cifar10", data_dir=tmp_path, download=False, verify=False)
    assert_one_line(error, complaint)


class Exploit:
    """Unpickling this would create a folder, if the unpickler let it name os.mkdir."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return os.mkdir, (str(self.target),)


def test_pickles_cannot_run_code(tmp_path):
    marker = tmp_path / "pwned"
    evil = pickle.dumps({b"data": Exploit(marker), b"labels": [0]}, protocol=2)
    members = {f"cifar-10-batches-py/{name}": evil for name in [*CIFAR10_TRAIN, "test_batch"]}
    archive = write_tar_gz(tmp_path / "cifar10" / "cifar-10-python.tar.gz", members)
    with pytest.raises(DatasetError) as error:
        load_splits("cifar10", data_dir=tmp_path, download=False, verify=False)
    assert_one_line(error, archive, "refusing to load global")
    assert not marker.exists()


# --- download -------------------------------------------------------------------------------------------------


def serve_locally(monkeypatch, dataset: str, source: Path, md5: str | None = None) -> None:
    """Point the data set's single resource at a file:// URL with the given (default: true) checksum."""
    md5 = md5 or hashlib.md5(source.read_bytes()).hexdigest()
    resource = Resource(source.name, source.as_uri(), md5)
    monkeypatch.setattr(data.DATASETS[dataset], "resources", (resource,))


def test_download_verifies_and_renames_into_place(tmp_path, monkeypatch):
    source, train_x, _, test_x, _ = make_cifar10(tmp_path / "server")
    serve_locally(monkeypatch, "cifar10", source)
    cache = tmp_path / "cache"
    splits = load_splits("cifar10", data_dir=cache)  # verify stays on: the real checking path
    assert splits.sizes() == (18, 2, 4) and np.array_equal(splits.test_x, test_x)
    assert [p.name for p in (cache / "cifar10").iterdir()] == ["cifar-10-python.tar.gz"]
    assert (cache / "cifar10" / source.name).read_bytes() == source.read_bytes()
    # A second load uses the cached file even with downloading off.
    assert load_splits("cifar10", data_dir=cache, download=False).sizes() == (18, 2, 4)


def test_download_with_wrong_checksum_leaves_nothing(tmp_path, monkeypatch):
    source, *_ = make_cifar10(tmp_path / "server")
    serve_locally(monkeypatch, "cifar10", source, md5="0" * 32)
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError) as error:
        load_splits("cifar10", data_dir=cache)
    assert_one_line(error, source.as_uri(), "0" * 32, cache / "cifar10" / source.name)
    assert list((cache / "cifar10").iterdir()) == []


def test_default_data_dir_honours_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("NAS_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_data_dir() == Path.home() / ".cache" / "nas" / "data"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "nas" / "data"
    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path / "mine"))
    assert default_data_dir() == tmp_path / "mine"
    with pytest.raises(DatasetError) as error:
        load_splits("mnist", download=False)
    assert_one_line(error, tmp_path / "mine" / "mnist" / "train-images-idx3-ubyte.gz")


# --- MNIST / Fashion-MNIST --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_data_sets(tmp_path, name):
    train_x, train_y, test_x, test_y = make_mnist(tmp_path / name)
    splits = load_splits(name, data_dir=tmp_path, download=False, verify=False, val_fraction=0.0)
    assert splits.info.input_shape == (1, 28, 28) and splits.info.classes == 10
    assert np.array_equal(splits.train_x[:, 0], train_x) and np.array_equal(splits.train_y, train_y)
    assert np.array_equal(splits.test_x[:, 0], test_x) and np.array_equal(splits.test_y, test_y)


def test_mnist_and_fashion_mnist_do_not_share_files(tmp_path):
    make_mnist(tmp_path / "mnist")
    with pytest.raises(DatasetError) as error:
        load_splits("fashion_mnist", data_dir=tmp_path, download=False, verify=False)
    assert_one_line(error, tmp_path / "fashion_mnist" / "train-images-idx3-ubyte.gz",
                    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz")


def test_published_idx_files_are_checksummed(tmp_path):
    make_mnist(tmp_path / "mnist")
    with pytest.raises(DatasetError) as error:
        load_splits("mnist", data_dir=tmp_path, download=False)
    assert_one_line(error, tmp_path / "mnist" / MNIST_FILES[0], "f68b3c2dcbeaaa9fbdd348bbdeb94873", "delete")


def test_wrong_idx_magic(tmp_path):
    make_mnist(tmp_path / "mnist")
    bad = write_idx(tmp_path / "mnist" / MNIST_FILES[1], np.zeros(12), magic=0x0903)
    with pytest.raises(DatasetError) as error:
        load_splits("mnist", data_dir=tmp_path, download=False, verify=False)
    assert_one_line(error, bad, "magic", "0x00000903", "0x00000801")


def test_idx_size_mismatch(tmp_path):
    make_mnist(tmp_path / "mnist")
    bad = write_idx(tmp_path / "mnist" / MNIST_FILES[2], np.zeros((6, 28, 28)), payload=bytes(5 * 28 * 28))
    with pytest.raises(DatasetError) as error:
        load_splits("mnist", data_dir=tmp_path, download=False, verify=False)
    assert_one_line(error, bad, "size mismatch", "6x28x28")


def test_truncated_gzip(tmp_path):
    make_mnist(tmp_path / "mnist")
    path = tmp_path / "mnist" / MNIST_FILES[0]
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DatasetError) as error:
        load_splits("mnist", data_dir=tmp_path, download=False, verify=False)
    assert_one_line(error, path, "truncated or corrupt gzip")


def test_image_and_label_counts_must_agree(tmp_path):
    make_mnist(tmp_path / "mnist")
    write_idx(tmp_path / "mnist" / MNIST_FILES[3], np.zeros(5))
    with pytest.raises(DatasetError) as error:
        load_splits("mnist", data_dir=tmp_path, download=False, verify=False)
    assert_one_line(error, "6 images", "5 labels")


# --- image folder -----------------------------------------------------------------------------------------------

COLOURS = {"ant": (255, 0, 0), "bee": (0, 255, 0), "cat": (0, 0, 255)}


def write_images(root: Path, per_class: int, classes=("cat", "ant", "bee")) -> None:
    """Solid-colour PNGs (12x10 pixels) per class, so labels can be checked against pixels."""
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.new("RGB", (12, 10), COLOURS[name]).save(root / name / f"{i}.png")


def test_image_folder_with_held_out_test(tmp_path):
    write_images(tmp_path / "pics", per_class=5)
    (tmp_path / "pics" / "ant" / "notes.txt").write_text("not an image")
    info = data.dataset_info("imagefolder", path=tmp_path / "pics", size=8)
    assert info == DatasetInfo("imagefolder", (3, 8, 8), 3, data.IMAGENET_MEAN, data.IMAGENET_STD)
    splits = load_splits("imagefolder", path=tmp_path / "pics", size=8, val_fraction=0.2)
    assert splits.sizes() == (10, 2, 3)
    colours = [COLOURS[name] for name in ("ant", "bee", "cat")]  # classes are the sorted folder names
    for x, y in ((splits.train_x, splits.train_y), (splits.val_x, splits.val_y), (splits.test_x, splits.test_y)):
        assert x.shape[1:] == (3, 8, 8)
        assert all(tuple(image[:, 4, 4]) == colours[label] for image, label in zip(x, y))
    again = load_splits("imagefolder", data_dir=tmp_path / "pics", size=8, seed=5)
    assert np.array_equal(again.test_y, splits.test_y)  # the test hold-out does not move with the seed


def test_image_folder_with_train_and_test_folders(tmp_path):
    write_images(tmp_path / "pics" / "train", per_class=4)
    write_images(tmp_path / "pics" / "test", per_class=1, classes=("bee",))
    splits = load_splits("imagefolder", path=tmp_path / "pics", size=(6, 4), channels=1, val_fraction=0.25)
    assert splits.info.input_shape == (1, 6, 4) and splits.info.classes == 3
    assert splits.sizes() == (9, 3, 1) and splits.test_y.tolist() == [1]
    assert splits.test_x[0, 0, 3, 2] == Image.new("RGB", (1, 1), COLOURS["bee"]).convert("L").getpixel((0, 0))


def test_image_folder_errors(tmp_path):
    with pytest.raises(DatasetError) as error:
        load_splits("imagefolder", path=tmp_path / "absent")
    assert_one_line(error, tmp_path / "absent", "not found")
    with pytest.raises(DatasetError) as error:
        load_splits("imagefolder")
    assert_one_line(error, "path=")
    write_images(tmp_path / "pics", per_class=2)
    broken = tmp_path / "pics" / "bee" / "9.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DatasetError) as error:
        load_splits("imagefolder", path=tmp_path / "pics")
    assert_one_line(error, broken, "cannot read image")
    write_images(tmp_path / "split" / "train", per_class=2, classes=("ant",))
    write_images(tmp_path / "split" / "val", per_class=1, classes=("bee",))
    with pytest.raises(DatasetError) as error:
        load_splits("imagefolder", path=tmp_path / "split")
    assert_one_line(error, tmp_path / "split" / "val", "bee")


# --- digits, synthetic, splits, registry ------------------------------------------------------------------------


def test_digits_work_offline():
    splits = load_splits("digits", seed=3)
    assert splits.info.input_shape == (1, 8, 8) and splits.info.classes == 10
    assert sum(splits.sizes()) == 1797
    assert splits.train_x.dtype == np.uint8 and splits.train_x.max() == 255
    assert set(np.unique(splits.train_y)) == set(range(10))


def test_synthetic_is_deterministic_configurable_and_learnable():
    options = dict(n_train=300, n_test=100, shape=(2, 6, 5), classes=4)
    first, second = load_splits("synthetic", **options), load_splits("synthetic", **options)
    assert first.info.input_shape == (2, 6, 5) and first.info.classes == 4 and first.sizes() == (270, 30, 100)
    assert np.array_equal(first.train_x, second.train_x) and np.array_equal(first.test_y, second.test_y)
    other = load_splits("synthetic", data_seed=1, **options)
    assert not np.array_equal(first.train_x, other.train_x)
    # Nearest class mean, fitted on train, classifies the test set far above chance.
    flat = first.train_x.reshape(len(first.train_x), -1).astype(float)
    centroids = np.stack([flat[first.train_y == c].mean(axis=0) for c in range(4)])
    test = first.test_x.reshape(len(first.test_x), -1).astype(float)
    predicted = np.argmin(((test[:, None] - centroids[None]) ** 2).sum(axis=2), axis=1)
    assert (predicted == first.test_y).mean() > 0.9


def test_split_is_deterministic_under_seed():
    a, b = load_splits("digits", seed=7), load_splits("digits", seed=7)
    c = load_splits("digits", seed=8)
    assert np.array_equal(a.val_x, b.val_x) and np.array_equal(a.train_y, b.train_y)
    assert not np.array_equal(a.val_x, c.val_x)
    assert np.array_equal(a.test_x, c.test_x)  # the test set is never reshuffled


def test_split_indices_are_disjoint_and_nested():
    train, val = split_indices(1000, 0.1, 1.0, seed=4)
    assert len(val) == 100 and len(train) == 900
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(range(1000))
    proxy_train, proxy_val = split_indices(1000, 0.1, 0.25, seed=4)
    assert np.array_equal(proxy_val, val)  # proxies are judged on the same validation set
    assert len(proxy_train) == 225 and set(proxy_train) <= set(train)
    assert np.array_equal(split_indices(1000, 0.1, 0.25, seed=4)[0], proxy_train)
    assert not np.array_equal(split_indices(1000, 0.1, 1.0, seed=5)[1], val)
    assert len(split_indices(5, 0.01, 1.0, seed=0)[1]) == 1  # a requested validation set is never empty


def test_train_fraction_through_load_splits():
    full = load_splits("synthetic", n_train=200)
    proxy = load_splits("synthetic", n_train=200, train_fraction=0.5)
    assert proxy.sizes() == (90, 20, 128)
    assert np.array_equal(proxy.val_x, full.val_x)


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(name="imagenet"), "known: cifar10, cifar100, digits, fashion_mnist, imagefolder, mnist, synthetic"),
    (dict(name="digits", size=8), "has no option size; its options: test_fraction"),
    (dict(name="digits", val_fraction=1.0), "val_fraction"),
    (dict(name="digits", train_fraction=0.0), "train_fraction"),
    (dict(name="synthetic", shape=(3, 0, 4)), "option shape"),
    (dict(name="imagefolder", path=".", channels=2), "option channels"),
])
def test_usage_errors(kwargs, fragment):
    with pytest.raises(DatasetError) as error:
        load_splits(**kwargs)
    assert_one_line(error, fragment)


def test_register_dataset(monkeypatch):
    monkeypatch.setattr(data, "DATASETS", data.DATASETS.copy())

    @data.register_dataset("tiny")
    class Tiny(data.Dataset):
        def info(self, data_dir, **options):
            return DatasetInfo("tiny", (1, 2, 2), 2, (0.5,), (0.5,))

        def load(self, data_dir, download, **options):
            x = np.arange(40, dtype=np.uint8).reshape(10, 1, 2, 2)
            return x, np.arange(10) % 2, x[:2], np.array([0, 1])

    assert "tiny" in data.known_datasets() and data.DATASETS["tiny"].name == "tiny"
    assert load_splits("tiny", val_fraction=0.2).sizes() == (8, 2, 2)
    Tiny.info = lambda self, data_dir, **options: DatasetInfo("tiny", (1, 2, 2), 1, (0.5,), (0.5,))
    with pytest.raises(DatasetError) as error:  # a label outside the declared classes is never passed on
        load_splits("tiny")
    assert_one_line(error, "labels span 0..1, expected 0..0")


# --- every registered data set --------------------------------------------------------------------------------


def _cached(make):
    """A generator of a published data set's files under tmp_path: the load arguments that read them."""
    def write(tmp_path: Path) -> dict:
        make(tmp_path)
        return dict(data_dir=tmp_path, download=False, verify=False)
    return write


def _image_folder(tmp_path: Path) -> dict:
    write_images(tmp_path / "pics", per_class=3)
    return dict(path=tmp_path / "pics", size=8)


# Data set -> writes small files in its own format under tmp_path and returns load_splits' arguments.
SMALL_FILES = {
    "cifar10": _cached(make_cifar10),
    "cifar100": _cached(make_cifar100),
    "mnist": _cached(lambda root: make_mnist(root / "mnist")),
    "fashion_mnist": _cached(lambda root: make_mnist(root / "fashion_mnist")),
    "imagefolder": _image_folder,
    "digits": lambda tmp_path: {},  # shipped with scikit-learn: no files
    "synthetic": lambda tmp_path: dict(n_train=20, n_test=10),  # generated: no files
}


@pytest.mark.parametrize("name", list(data.DATASETS))
def test_every_data_set_loads_from_small_files_in_its_format(tmp_path, name):
    assert name in SMALL_FILES, f"data set {name!r} has no generator of small files in SMALL_FILES"
    splits = load_splits(name, val_fraction=0.0, **SMALL_FILES[name](tmp_path))
    for x, y in ((splits.train_x, splits.train_y), (splits.test_x, splits.test_y)):
        assert len(x) == len(y) > 0 and x.shape[1:] == splits.info.input_shape
        assert x.dtype == np.uint8 and y.dtype == np.int64
        assert 0 <= y.min() and y.max() < splits.info.classes
