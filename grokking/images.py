"""Image classification data for deep grokking: MNIST from IDX files, and an offline stand-in.

``data=mnist`` reads the four standard IDX files (gzipped or not) from ``data.dir`` and, when they
are missing and ``data.download`` is on, fetches them from the first of ``data.mirrors`` that
answers. ``data=digits`` is scikit-learn's bundled 8×8 digits (1797 images, no download), so that
quick starts and CI can run deep-grokking examples on any machine.

Both become a ``Dataset`` of flattened float32 vectors whose ``inputs`` are the training subset
followed by the validation images (one evaluation pass covers both), labels int64 in 0..9.
"""
from __future__ import annotations

import gzip
import hashlib
import math
import struct
import sys
import urllib.request
from pathlib import Path

import numpy as np
import torch

from grokking.dataset import Dataset
from grokking.errors import ConfigError

# IDX type codes (http://yann.lecun.com/exdb/mnist/): the element type of the array that follows.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

# The four MNIST files and the MD5 of their .gz form, as published (and checked by torchvision).
MNIST_FILES = {
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}


def read_idx(path: Path) -> np.ndarray:
    """The array in an IDX file (``.gz`` read through gzip): magic ``0 0 type ndim``, ``ndim``
    big-endian uint32 sizes, then the elements in row-major order."""
    path = Path(path)
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:  # not gzip, or a cut-off gzip stream
        raise ConfigError(f"cannot read {path}: {e}") from None
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in IDX_TYPES or len(data) < 4 + 4 * data[3]:
        raise ConfigError(f"{path} is not an IDX file (bad magic number)")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    dtype = np.dtype(IDX_TYPES[data[2]])
    body = data[4 + 4 * ndim :]
    if len(body) != math.prod(shape) * dtype.itemsize:
        raise ConfigError(f"{path} is truncated or corrupt: header says {shape}, body has {len(body)} bytes")
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzipped when ``path`` ends in .gz): small test fixtures."""
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_TYPES.items()}
    array = np.asarray(array)
    if array.dtype not in codes:
        raise ValueError(f"IDX cannot hold dtype {array.dtype}")
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    body = array.astype(np.dtype(IDX_TYPES[codes[array.dtype]])).tobytes()
    path = Path(path)
    with (gzip.open if path.suffix == ".gz" else open)(path, "wb") as f:
        f.write(header + body)


def find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def download(folder: Path, stem: str, mirrors) -> None:
    """Fetch ``stem``.gz from the first mirror that serves it with the published checksum."""
    errors = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + f"/{stem}.gz"
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                blob = response.read()
        except OSError as e:  # URLError, HTTPError and timeouts are all OSErrors
            errors.append(f"{url}: {e}")
            continue
        if hashlib.md5(blob, usedforsecurity=False).hexdigest() != MNIST_FILES[stem]:
            errors.append(f"{url}: checksum mismatch")
            continue
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f"{stem}.gz.part"
        partial.write_bytes(blob)
        partial.replace(folder / f"{stem}.gz")
        return
    raise ConfigError(f"could not download {stem}.gz into {folder} ({'; '.join(errors) or 'data.mirrors is empty'}); "
                      "put the four MNIST IDX files there by hand or point data.dir at them")


def mnist_arrays(data_cfg) -> tuple[np.ndarray, ...]:
    """Training images, training labels, test images, test labels from ``data.dir``."""
    folder = Path(data_cfg.dir).expanduser().resolve()
    missing = [stem for stem in MNIST_FILES if find_idx(folder, stem) is None]
    if missing and data_cfg.download:
        for stem in missing:
            print(f"grokking: downloading {stem}.gz into {folder}", file=sys.stderr)
            download(folder, stem, data_cfg.mirrors)
    elif missing:
        raise ConfigError(
            f"MNIST not found: {folder} lacks {', '.join(missing)}; put the four IDX files (.gz or not) "
            f"there, point data.dir at them, or set data.download=true on a machine that is online"
        )
    return tuple(read_idx(find_idx(folder, stem)) for stem in MNIST_FILES)


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8×8 digits: pixel values 0..16, flattened to 64."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ConfigError("data=digits needs scikit-learn: pip install scikit-learn") from None
    digits = load_digits()
    return digits.images.reshape(len(digits.images), -1), digits.target


def count(key: str, value: int | None, limit: int) -> int:
    """``value`` checked against 1..limit; null means ``limit`` (all that are left)."""
    value = limit if value is None else value
    if not isinstance(value, int) or not 1 <= value <= limit:
        raise ConfigError(f"{key}={value} is out of range; allowed: 1 to {limit} for this data set")
    return value


def order(n: int, seed: int | None) -> np.ndarray:
    """A permutation of ``range(n)`` seeded by ``seed`` alone, or ``range(n)`` itself when ``seed``
    is null (Omnigrok trains on MNIST's first 1000 images)."""
    return np.arange(n) if seed is None else np.random.default_rng(seed).permutation(n)


def normalise(train_x: np.ndarray, val_x: np.ndarray, max_value: float, mode: str):
    """Pixels to [0, 1] (``unit``, as torchvision's ToTensor in Omnigrok and Fan et al.), then for
    ``standard`` shifted and scaled by the training images' own mean and standard deviation."""
    if mode not in ("unit", "standard"):
        raise ConfigError(f"data.normalise={mode} is invalid; allowed: unit, standard")
    train_x, val_x = train_x / max_value, val_x / max_value
    if mode == "standard":
        mean, std = train_x.mean(), train_x.std()
        train_x, val_x = (train_x - mean) / std, (val_x - mean) / std
    return train_x, val_x


def image_dataset(train_x, train_y, val_x, val_y, max_value: float, mode: str):
    train_x, val_x = normalise(train_x.reshape(len(train_x), -1).astype(np.float64),
                               val_x.reshape(len(val_x), -1).astype(np.float64), max_value, mode)
    n_train, n_total = len(train_x), len(train_x) + len(val_x)
    return Dataset(
        inputs=torch.from_numpy(np.concatenate([train_x, val_x]).astype(np.float32)),
        labels=torch.from_numpy(np.concatenate([train_y, val_y]).astype(np.int64)),
        train_idx=torch.arange(n_train),
        val_idx=torch.arange(n_train, n_total),
        n_classes=10,
    )


def mnist(cfg):
    """``data.n_train`` training images, validated on the test set (or ``data.n_val`` of it)."""
    d = cfg.data
    train_x, train_y, test_x, test_y = mnist_arrays(d)
    train = order(len(train_x), d.seed)[: count("data.n_train", d.n_train, len(train_x))]
    val = order(len(test_x), d.seed)[: count("data.n_val", d.n_val, len(test_x))]
    return image_dataset(train_x[train], train_y[train], test_x[val], test_y[val], 255.0, d.normalise)


def digits(cfg):
    """``data.n_train`` images for training and ``data.n_val`` of the rest (all when null) for
    validation: the 8×8 digits have no official test split."""
    d = cfg.data
    x, y = digits_arrays()
    n_train = count("data.n_train", d.n_train, len(x) - 1)
    n_val = count("data.n_val", d.n_val, len(x) - n_train)
    perm = order(len(x), d.seed)
    train, val = perm[:n_train], perm[n_train : n_train + n_val]
    return image_dataset(x[train], y[train], x[val], y[val], 16.0, d.normalise)
