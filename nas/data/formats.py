"""Readers for the on-disk formats: CIFAR pickle tarballs, gzipped IDX files and class-per-folder images."""

from __future__ import annotations

import codecs
import gzip
import io
import math
import pickle
import struct
import tarfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
CIFAR_PIXELS = 3 * 32 * 32


class DatasetError(ValueError):
    """A data set is missing, corrupt or misconfigured; the CLI prints the one-line message and exits 2."""

    def __init__(self, message: str) -> None:
        # Messages embed OS and parser errors that may contain newlines; the CLI contract is one line.
        super().__init__(" ".join(str(message).split()))


# The published CIFAR batches hold numpy uint8 arrays, so unpickling needs exactly the pieces numpy uses to
# rebuild a plain ndarray (no subclass or callable beyond these can be named, so no code can run).
_RECONSTRUCT = np.empty(0).__reduce__()[0]
_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,  # numpy 1.x pickles, e.g. the published files
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,  # numpy 2.x pickles
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # how Python 3 writes bytes at pickle protocol 2
}


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that resolves only builtin containers and plain numpy arrays; any other global is refused."""

    def find_class(self, module: str, name: str) -> Any:
        """Return an allow-listed global or raise UnpicklingError."""
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def read_cifar(archive: Path, label_key: bytes, train: list[str], test: list[str]) -> tuple[np.ndarray, ...]:
    """Read CIFAR python batches from a .tar.gz: (train_x, train_y, test_x, test_y), images uint8 N,3,32,32."""
    wanted = set(train) | set(test)
    raw: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            # Iterate to the end (not just to the last wanted member) so a truncated gzip stream is noticed.
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in wanted and base not in raw:
                    handle = tar.extractfile(member)
                    raw[base] = handle.read() if handle else b""
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise DatasetError(f"{archive}: truncated or corrupt archive ({err}); delete it and get it again") from None
    missing = sorted(wanted - raw.keys())
    if missing:
        raise DatasetError(f"{archive}: archive lacks {', '.join(missing)}; not a CIFAR python archive")
    train_x, train_y = _cifar_batches(archive, [(name, raw[name]) for name in train], label_key)
    test_x, test_y = _cifar_batches(archive, [(name, raw[name]) for name in test], label_key)
    return train_x, train_y, test_x, test_y


def _cifar_batches(archive: Path, batches: list[tuple[str, bytes]], label_key: bytes) -> tuple[np.ndarray, ...]:
    """Decode and concatenate several pickled CIFAR batches."""
    decoded = [_cifar_batch(f"{archive}:{name}", data, label_key) for name, data in batches]
    return np.concatenate([x for x, _ in decoded]), np.concatenate([y for _, y in decoded])


def _cifar_batch(where: str, data: bytes, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Decode one pickled batch dict {b"data": N x 3072 uint8, label_key: N ints}."""
    try:
        batch = SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as err:  # a corrupt pickle can raise almost any type; all mean the same to the user
        raise DatasetError(f"{where}: cannot unpickle CIFAR batch ({type(err).__name__}: {err})") from None
    if isinstance(batch, dict):
        batch = {key.encode() if isinstance(key, str) else key: value for key, value in batch.items()}
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        keys = sorted(map(repr, batch)) if isinstance(batch, dict) else type(batch).__name__
        raise DatasetError(f"{where}: not a CIFAR batch: needs keys b'data' and {label_key!r}, found {keys}")
    pixels = batch[b"data"]
    if isinstance(pixels, (bytes, bytearray)):
        pixels = np.frombuffer(pixels, np.uint8)
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
        raise DatasetError(f"{where}: b'data' is not uint8 pixel data")
    labels = np.asarray(batch[label_key])
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(f"{where}: {label_key!r} is not a list of integer labels")
    if pixels.size != len(labels) * CIFAR_PIXELS:
        raise DatasetError(f"{where}: {pixels.size} pixel bytes for {len(labels)} labels, "
                           f"expected {len(labels)} x {CIFAR_PIXELS}")
    # Rows are 1024 red, 1024 green, 1024 blue values, each row-major 32x32: exactly C,H,W order.
    return pixels.reshape(len(labels), 3, 32, 32), labels.astype(np.int64)


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read a gzipped unsigned-byte IDX file (magic 0x0000 08 <ndim>, big-endian uint32 sizes, data)."""
    try:
        with gzip.open(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise DatasetError(f"{path}: truncated or corrupt gzip file ({err}); delete it and get it again") from None
    magic = 0x0800 | ndim
    found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if found != magic:
        shown = f"0x{found:08x}" if found is not None else "missing"
        raise DatasetError(f"{path}: bad IDX magic number {shown}, expected 0x{magic:08x} "
                           f"(unsigned bytes, {ndim} dimension{'s' if ndim > 1 else ''})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path}: IDX header truncated ({len(raw)} bytes)")
    sizes = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + math.prod(sizes)
    if len(raw) != expected:
        raise DatasetError(f"{path}: IDX size mismatch: header says {'x'.join(map(str, sizes))} "
                           f"({expected} bytes), file holds {len(raw)} bytes")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(sizes)


def read_mnist(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an IDX image/label pair into uint8 N,1,H,W images and int64 labels."""
    x, y = read_idx(images, 3), read_idx(labels, 1)
    if len(x) != len(y):
        raise DatasetError(f"{images}: {len(x)} images but {labels} has {len(y)} labels")
    return x[:, None], y.astype(np.int64)


def class_folders(root: Path) -> list[str]:
    """The classes of an image folder: its sorted, non-hidden sub-folder names."""
    if not root.is_dir():
        raise DatasetError(f"{root}: image folder not found (expected one sub-folder of images per class)")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetError(f"{root}: no class sub-folders (expected one sub-folder of images per class)")
    return classes


def read_image_folder(root: Path, classes: list[str], size: tuple[int, int],
                      channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Read every image under root/<class>/ (recursively), converted and resized to channels x size."""
    extra = set(class_folders(root)) - set(classes)
    if extra:
        raise DatasetError(f"{root}: class folders {', '.join(sorted(extra))} are not among the training "
                           f"classes {', '.join(classes)}")
    files = [(path, label) for label, name in enumerate(classes) if (root / name).is_dir()
             for path in sorted((root / name).rglob("*"))
             if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()]
    if not files:
        raise DatasetError(f"{root}: no images found (suffixes {', '.join(sorted(IMAGE_SUFFIXES))})")
    height, width = size
    mode = "L" if channels == 1 else "RGB"
    images = np.empty((len(files), channels, height, width), np.uint8)
    for index, (path, _) in enumerate(files):
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert(mode).resize((width, height), Image.Resampling.BILINEAR))
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            raise DatasetError(f"{path}: cannot read image ({err})") from None
        images[index] = pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
    return images, np.array([label for _, label in files], np.int64)
