"""Image data: the IDX reader on files written here, the MNIST and digits builders, their errors."""
from __future__ import annotations

import gzip
import hashlib
import struct

import numpy as np
import pytest
import torch

from grokking.data import build_dataset
from grokking import images
from grokking.config import check_command_line
from grokking.errors import ConfigError
from grokking.images import MNIST_FILES, read_idx, write_idx
from tests.helpers import make_cfg


def idx_bytes(array: np.ndarray, type_code: int, big_endian_dtype: str) -> bytes:
    """An IDX file spelled out byte by byte, independently of ``write_idx``."""
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    return header + array.astype(big_endian_dtype).tobytes()


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_reader_reads_hand_written_idx_files(tmp_path, suffix):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    floats = np.array([[1.5, -2.0], [0.25, 1e6]], dtype=np.float32)
    for name, array, code, dtype in [("u8", images, 0x08, ">u1"), ("f32", floats, 0x0D, ">f4")]:
        blob = idx_bytes(array, code, dtype)
        path = tmp_path / (name + suffix)
        path.write_bytes(gzip.compress(blob) if suffix else blob)
        got = read_idx(path)
        assert got.shape == array.shape and got.dtype == array.dtype
        np.testing.assert_array_equal(got, array)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_writer_and_reader_round_trip(tmp_path, dtype):
    array = (np.arange(60).reshape(3, 4, 5) - 7).astype(dtype)
    write_idx(tmp_path / "a.gz", array)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), array)


def test_reader_rejects_bad_files(tmp_path):
    (tmp_path / "junk").write_bytes(b"<html>not found</html>")
    with pytest.raises(ConfigError, match="not an IDX file"):
        read_idx(tmp_path / "junk")
    (tmp_path / "short").write_bytes(idx_bytes(np.zeros((4, 2), np.uint8), 0x08, ">u1")[:-1])
    with pytest.raises(ConfigError, match="truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "page.gz").write_bytes(b"<html>moved</html>")
    with pytest.raises(ConfigError, match="cannot read"):
        read_idx(tmp_path / "page.gz")


def fake_mnist(folder, n_train=50, n_test=20, gz=True):
    """Random 28x28 images and labels in the four MNIST files; returns the arrays written."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_train, dtype=np.uint8),
              rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_test, dtype=np.uint8)]
    for stem, array in zip(MNIST_FILES, arrays):
        write_idx(folder / (stem + (".gz" if gz else "")), array)
    return arrays


def mnist_cfg(folder, *overrides):
    return make_cfg(["data=mnist", f"data.dir={folder}", "data.download=false", *overrides])


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_shapes_dtypes_and_unit_scaling(tmp_path, gz):
    train_x, train_y, test_x, test_y = fake_mnist(tmp_path, gz=gz)
    data = build_dataset(mnist_cfg(tmp_path, "data.n_train=10", "data.seed=null"))
    assert data.inputs.shape == (10 + 20, 784) and data.inputs.dtype == torch.float32
    assert data.labels.dtype == torch.int64 and data.n_classes == 10 and data.n_values is None
    assert data.train_idx.tolist() == list(range(10)) and data.val_idx.tolist() == list(range(10, 30))
    # seed=null: the first n_train training images, then the whole test set, pixels / 255
    np.testing.assert_allclose(data.inputs[:10].numpy(), train_x[:10].reshape(10, -1) / 255, rtol=1e-6)
    np.testing.assert_allclose(data.inputs[10:].numpy(), test_x.reshape(20, -1) / 255, rtol=1e-6)
    assert data.labels.tolist() == train_y[:10].tolist() + test_y.tolist()


def test_mnist_seeded_subsets_and_standardisation(tmp_path):
    train_x, _, _, _ = fake_mnist(tmp_path)
    subset = ["data.n_train=12", "data.n_val=5"]
    data = build_dataset(mnist_cfg(tmp_path, *subset, "data.seed=3", "data.normalise=standard"))
    assert len(data.train_idx) == 12 and len(data.val_idx) == 5
    train = data.inputs[data.train_idx].double()
    assert abs(train.mean().item()) < 1e-6 and abs(train.std(unbiased=False).item() - 1) < 1e-5
    # a seed draws the same images every time, another seed other images, all from the training set
    seed3, again, seed4 = (build_dataset(mnist_cfg(tmp_path, *subset, f"data.seed={s}")) for s in (3, 3, 4))
    assert torch.equal(seed3.inputs, again.inputs) and torch.equal(seed3.labels, again.labels)
    assert not torch.equal(seed3.inputs, seed4.inputs)
    rows = {r.tobytes() for r in (train_x.reshape(50, -1) / 255).astype(np.float32)}
    assert all(r.numpy().tobytes() in rows for r in seed3.inputs[:12])


def test_missing_mnist_folder_is_a_one_line_error_naming_the_place(tmp_path):
    folder = tmp_path / "nowhere"
    with pytest.raises(ConfigError) as err:
        build_dataset(mnist_cfg(folder))
    message = str(err.value)
    assert "\n" not in message and str(folder) in message
    assert "train-images-idx3-ubyte" in message and "data.dir" in message


@pytest.mark.parametrize("override, key", [("data.n_train=51", "data.n_train"), ("data.n_val=0", "data.n_val")])
def test_mnist_bad_values_are_config_errors(tmp_path, override, key):
    fake_mnist(tmp_path)
    with pytest.raises(ConfigError, match=key):
        build_dataset(mnist_cfg(tmp_path, "data.n_train=10", override))


def test_an_unknown_normalisation_is_refused_by_the_schema():
    with pytest.raises(ConfigError, match="data.normalise=zscore is not an option; allowed: unit, standard"):
        check_command_line(["data=mnist", "data.normalise=zscore"])


def test_digits_offline_set():
    data = build_dataset(make_cfg(["data=digits", "data.n_train=300", "data.n_val=500"]))
    assert data.inputs.shape == (800, 64) and data.inputs.dtype == torch.float32
    assert data.labels.dtype == torch.int64 and set(data.labels.tolist()) == set(range(10))
    assert 0 <= data.inputs.min() and data.inputs.max() == 1
    assert len(data.train_idx) == 300 and len(data.val_idx) == 500
    rest = build_dataset(make_cfg(["data=digits", "data.n_train=300"]))
    assert len(rest.val_idx) == 1797 - 300
    assert torch.equal(rest.inputs[:800], data.inputs)  # n_val takes the first of the same rest
    train = {r.numpy().tobytes() for r in rest.inputs[rest.train_idx]}  # the 1797 images are distinct
    assert not any(r.numpy().tobytes() in train for r in rest.inputs[rest.val_idx])


def test_download_tries_mirrors_in_turn_and_checks_md5(tmp_path, monkeypatch):
    """Offline: the mirrors are file:// folders; one lacks the files, one serves corrupt ones."""
    good, corrupt, target = tmp_path / "good", tmp_path / "corrupt", tmp_path / "mnist"
    for folder in (good, corrupt):
        folder.mkdir()
    fake_mnist(good)
    checksums = {stem: hashlib.md5((good / f"{stem}.gz").read_bytes()).hexdigest() for stem in MNIST_FILES}
    monkeypatch.setattr(images, "MNIST_FILES", checksums)
    for stem in MNIST_FILES:
        (corrupt / f"{stem}.gz").write_bytes(b"<html>moved</html>")
    mirrors = ",".join(f"'{p.as_uri()}/'" for p in (tmp_path / "absent", corrupt, good))
    cfg = make_cfg(["data=mnist", f"data.dir={target}", "data.download=true", f"data.mirrors=[{mirrors}]",
                    "data.n_train=10"])
    data = build_dataset(cfg)
    assert len(data.train_idx) == 10 and sorted(p.name for p in target.iterdir()) == sorted(f"{s}.gz" for s in MNIST_FILES)
    cfg.data.mirrors = [corrupt.as_uri()]
    cfg.data.dir = str(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="checksum mismatch"):
        build_dataset(cfg)
