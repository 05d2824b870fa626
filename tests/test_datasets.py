"""Datasets: digits (bundled), Fashion-MNIST IDX files (Debian package or --data-dir), CIFAR errors, augmentation."""

from __future__ import annotations

import gzip
import importlib.util

import numpy as np
import pytest
import torch

from modnas.datasets import (
    FASHION_FILES,
    FASHION_SYSTEM_DIR,
    augment,
    augmentation_for,
    load_dataset,
    normalise_name,
    read_idx,
    search_split,
)
from modnas.errors import ModnasError

HAVE_FASHION = (FASHION_SYSTEM_DIR / "train-images-idx3-ubyte.gz").is_file()


def write_idx(path, array: np.ndarray, compress: bool = True) -> None:
    magic = 0x0800 | array.ndim  # 0x08: unsigned bytes
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


def fake_fashion(folder, n_train=20, n_test=10, compress=True):
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    for key, stem in FASHION_FILES.items():
        n = n_train if key.startswith("train") else n_test
        array = rng.integers(0, 256, (n, 28, 28)) if key.endswith("_x") else rng.integers(0, 10, n)
        write_idx(folder / f"{stem}{suffix}", array, compress)


def test_digits_split_is_fixed_and_stratified():
    data = load_dataset("digits")
    assert data.train_x.shape == (1297, 1, 8, 8) and data.test_x.shape == (500, 1, 8, 8)
    assert data.num_classes == 10 and data.in_channels == 1 and data.image_size == 8
    assert torch.bincount(data.test_y).min() >= 48  # stratified: about 50 per class
    assert abs(float(data.train_x.mean())) < 1e-4 and abs(float(data.train_x.std()) - 1) < 1e-3
    again = load_dataset("Digits")
    assert torch.equal(again.train_y, data.train_y)
    train_x, train_y, test_x, test_y = data  # unpacks like a tuple
    assert len(train_x) == len(train_y) == 1297


def test_names_and_unknown_dataset():
    assert normalise_name("Fashion_MNIST") == "fashion-mnist" and normalise_name("CIFAR-10") == "cifar10"
    with pytest.raises(ModnasError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")


def test_fashion_from_data_dir(tmp_path):
    fake_fashion(tmp_path)
    data = load_dataset("fashion-mnist", tmp_path)
    assert data.train_x.shape == (20, 1, 28, 28) and data.test_y.shape == (10,)
    plain = tmp_path / "plain"
    plain.mkdir()
    fake_fashion(plain, compress=False)
    assert load_dataset("fashion", plain).train_x.shape == (20, 1, 28, 28)


def test_fashion_missing_is_a_one_line_hint(tmp_path):
    with pytest.raises(ModnasError, match="apt-get install dataset-fashion-mnist") as info:
        load_dataset("fashion-mnist", tmp_path)
    assert "\n" not in str(info.value) and "--data-dir" in str(info.value)


@pytest.mark.parametrize("damage", ["truncate", "not-gzip", "magic", "short-header"])
def test_fashion_damaged_files_are_refused(tmp_path, damage):
    fake_fashion(tmp_path)
    path = tmp_path / (FASHION_FILES["train_x"] + ".gz")
    raw = gzip.decompress(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(gzip.compress(raw[:-100]))
    elif damage == "not-gzip":
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    elif damage == "magic":
        path.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + raw[4:]))
    else:
        path.write_bytes(gzip.compress(raw[:6]))
    with pytest.raises(ModnasError) as info:
        load_dataset("fashion-mnist", tmp_path)
    assert "\n" not in str(info.value) and "train-images" in str(info.value)


def test_read_idx_labels(tmp_path):
    write_idx(tmp_path / "l.gz", np.arange(7) % 10)
    assert read_idx(tmp_path / "l.gz", 1).tolist() == list(range(7))


@pytest.mark.skipif(not HAVE_FASHION, reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist_from_the_debian_package():
    data = load_dataset("fashion-mnist")
    assert data.train_x.shape == (60000, 1, 28, 28) and data.test_x.shape == (10000, 1, 28, 28)
    assert torch.bincount(data.test_y).tolist() == [1000] * 10
    small = data.limit_train(100)
    assert len(small.train_y) == 100 and len(small.test_y) == 10000


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed")
def test_cifar_without_torchvision_says_what_to_install():
    with pytest.raises(ModnasError, match=r'pip install "modnas\[cifar\]"'):
        load_dataset("cifar10", "/nonexistent")


def test_search_split_halves():
    w, h = search_split(11, 0.5)
    assert w.tolist() == list(range(6)) and h.tolist() == list(range(6, 11))
    with pytest.raises(ModnasError, match="train_portion"):
        search_split(10, 1.0)


def test_augment_is_seeded_and_shape_preserving():
    x = torch.randn(8, 1, 6, 6)
    a = augment(x, torch.Generator().manual_seed(3), pad=2, flip=True)
    b = augment(x, torch.Generator().manual_seed(3), pad=2, flip=True)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)
    assert augment(x, torch.Generator(), pad=0, flip=False) is x
    assert augmentation_for("digits") == (0, False) and augmentation_for("cifar10") == (4, True)


def test_resized_scales_every_image_and_keeps_the_labels():
    from modnas.datasets import ImageData

    data = ImageData("toy", torch.rand(5, 1, 8, 8), torch.arange(5), torch.rand(3, 1, 8, 8), torch.arange(3), 5)
    big = data.resized(12)
    assert big.train_x.shape == (5, 1, 12, 12) and big.test_x.shape == (3, 1, 12, 12) and big.image_size == 12
    assert torch.equal(big.train_y, data.train_y) and big.num_classes == 5
    assert data.resized(None) is data and data.resized(8) is data
    with pytest.raises(ModnasError, match="image size must be a positive integer"):
        data.resized(0)
