"""Real image datasets for one-shot search and for training found architectures, held in memory as tensors.

* ``digits``: scikit-learn's bundled handwritten digits (1,797 real 8x8 grey images, 10 classes), offline with nothing
  to install; a fixed stratified split into 1,297 training and 500 test images.
* ``fashion-mnist``: 70,000 real 28x28 grey images (60,000 train, 10,000 test) read from the standard IDX files
  (``*-idx?-ubyte.gz``, plain or gzipped) with NumPy alone: from ``--data-dir`` or from the Debian package
  ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``).
* ``cifar10`` / ``cifar100``: through torchvision (``pip install "modnas[cifar]"``) from ``--data-dir``; downloaded only
  when asked to.

Images are float32 ``(N, C, H, W)``, normalised with the training set's per-channel mean and std; labels are int64.
Every problem (missing or damaged files, an unknown name) is a one-line :class:`~modnas.errors.ModnasError`.
"""

from __future__ import annotations

import functools
import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from modnas.errors import ModnasError

DATASETS: tuple[str, ...] = ("digits", "fashion-mnist", "cifar10", "cifar100", "bible-kjv", "fortunes")
#: the text corpora among them (:mod:`modnas.text`: byte tokens in windows, for language-model spaces)
TEXT_DATASETS: tuple[str, ...] = ("bible-kjv", "fortunes")
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
#: IDX magic numbers: 0x0803 = unsigned bytes in 3 dimensions (images), 0x0801 = in 1 dimension (labels)
_IDX_MAGIC = {3: 0x00000803, 1: 0x00000801}
DIGITS_TEST_SIZE = 500
DIGITS_SPLIT_SEED = 0


@dataclass(frozen=True)
class ImageData:
    """A labelled image dataset held in memory: normalised float images and int64 labels."""

    name: str
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    num_classes: int

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])

    def __iter__(self):  # so that ``train_x, train_y, test_x, test_y = load_dataset(...)`` works
        return iter((self.train_x, self.train_y, self.test_x, self.test_y))

    def resized(self, size: int | None) -> ImageData:
        """Every image resized to ``size`` x ``size`` pixels (bilinear; unchanged for ``None`` or its own size)."""
        if size is None or size == self.image_size:
            return self
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ModnasError(f"image size must be a positive integer, got {size!r}")

        def scale(x: Tensor) -> Tensor:
            return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)

        return ImageData(self.name, scale(self.train_x), self.train_y, scale(self.test_x), self.test_y,
                         self.num_classes)

    def limit_train(self, n: int | None) -> ImageData:
        """The first ``n`` training images only (all of them for ``None``); the test set is kept."""
        if n is None or n >= len(self.train_y):
            return self
        if n < 2:
            raise ModnasError(f"a training subset needs at least 2 images, got {n}")
        return ImageData(self.name, self.train_x[:n], self.train_y[:n], self.test_x, self.test_y, self.num_classes)


def normalise_name(name: str) -> str:
    """Canonical dataset name (case and ``_``/``-`` insensitive); unknown names are a one-line error."""
    key = str(name).strip().lower().replace("_", "-")
    key = {"fashion": "fashion-mnist", "fashionmnist": "fashion-mnist", "cifar-10": "cifar10", "cifar-100": "cifar100"}.get(
        key, key
    )
    if key not in DATASETS:
        raise ModnasError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return key


def load_dataset(name: str, data_dir: str | Path | None = None, download: bool = False) -> ImageData:
    """Load a dataset by name (see the module docstring); ``download`` only matters for CIFAR."""
    key = normalise_name(name)
    if key in TEXT_DATASETS:
        from modnas.text import load_token_windows

        return load_token_windows(key, data_dir)  # type: ignore[return-value]
    if key == "digits":
        return _digits()
    if key == "fashion-mnist":
        return _fashion_mnist(data_dir)
    return _cifar(key, data_dir, download)


def search_split(n: int, train_portion: float = 0.5) -> tuple[Tensor, Tensor]:
    """Indices of the weight-training and hypernetwork-training halves of ``n`` training images.

    As in MODNAS, the split is by index order (the first ``train_portion`` for the weights); every dataset here is
    already shuffled (digits by its stratified split, the others by their publishers).
    """
    if not 0 < train_portion < 1:
        raise ModnasError(f"train_portion must lie strictly between 0 and 1, got {train_portion}")
    cut = int(round(n * train_portion))
    if cut < 1 or cut >= n:
        raise ModnasError(f"{n} training images cannot be split at train_portion {train_portion}")
    idx = torch.arange(n)
    return idx[:cut], idx[cut:]


def _normalised(train: np.ndarray, test: np.ndarray) -> tuple[Tensor, Tensor]:
    """float32 tensors scaled with the training set's per-channel mean and std."""
    train_t = torch.from_numpy(np.ascontiguousarray(train, dtype=np.float32))
    test_t = torch.from_numpy(np.ascontiguousarray(test, dtype=np.float32))
    mean = train_t.mean(dim=(0, 2, 3), keepdim=True)
    std = train_t.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return (train_t - mean) / std, (test_t - mean) / std


def _labels(y: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))


# -- digits -----------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _digits() -> ImageData:
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise ModnasError("the digits dataset needs scikit-learn: pip install scikit-learn") from None
    bunch = load_digits()
    x = bunch.images.astype(np.float32)[:, None] / 16.0  # values 0..16 -> [0, 1]
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=DIGITS_TEST_SIZE, stratify=y, random_state=DIGITS_SPLIT_SEED
    )
    train_x, test_x = _normalised(x_tr, x_te)
    return ImageData("digits", train_x, _labels(y_tr), test_x, _labels(y_te), 10)


# -- Fashion-MNIST (IDX files) ----------------------------------------------------------------------------------


def _find_idx(stem: str, dirs: list[Path]) -> Path | None:
    for folder in dirs:
        for name in (f"{stem}.gz", stem):
            if (folder / name).is_file():
                return folder / name
    return None


def fashion_dirs(data_dir: str | Path | None) -> list[Path]:
    """Where Fashion-MNIST is looked for: ``data_dir`` (and its ``fashion-mnist``/``FashionMNIST/raw`` folders),
    or the Debian package's folder when no ``data_dir`` is given."""
    if data_dir is None:
        return [FASHION_SYSTEM_DIR]
    base = Path(data_dir)
    return [base, base / "fashion-mnist", base / "FashionMNIST" / "raw"]


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes with ``ndim`` dimensions; a damaged file is a one-line error."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ModnasError(f"{path} is damaged or not readable ({type(exc).__name__}); reinstall it") from None
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ModnasError(f"{path} is truncated: {len(raw)} bytes, shorter than its IDX header")
    magic = int.from_bytes(raw[:4], "big")
    if magic != _IDX_MAGIC[ndim]:
        raise ModnasError(f"{path} is not an IDX file of {ndim}-d unsigned bytes (magic number {magic:#010x})")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise ModnasError(f"{path} is truncated or damaged: {len(raw) - header} data bytes, header says {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _fashion_mnist(data_dir: str | Path | None) -> ImageData:
    dirs = fashion_dirs(data_dir)
    paths = {key: _find_idx(stem, dirs) for key, stem in FASHION_FILES.items()}
    missing = [FASHION_FILES[k] + ".gz" for k, p in paths.items() if p is None]
    if missing:
        where = ", ".join(str(d) for d in dirs[:1])
        raise ModnasError(
            f"Fashion-MNIST not found in {where} (missing {missing[0]}): install it with "
            f"'apt-get install dataset-fashion-mnist' or pass --data-dir DIR holding the four *-idx?-ubyte.gz files"
        )
    files = tuple((k, str(p), p.stat().st_mtime_ns, p.stat().st_size) for k, p in paths.items() if p is not None)
    return _fashion_from_files(files)


@functools.lru_cache(maxsize=1)
def _fashion_from_files(files: tuple[tuple[str, str, int, int], ...]) -> ImageData:
    """Fashion-MNIST from its four files, cached by path, modification time and size (reading takes seconds)."""
    arrays = {k: read_idx(Path(p), 3 if k.endswith("_x") else 1) for k, p, _, _ in files}
    for split in ("train", "test"):
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        if len(x) != len(y):
            raise ModnasError(f"Fashion-MNIST {split} set has {len(x)} images but {len(y)} labels")
        if y.size and int(y.max()) >= 10:
            raise ModnasError(f"Fashion-MNIST {split} labels must lie in 0..9, found {int(y.max())}")
    train_x, test_x = _normalised(arrays["train_x"][:, None] / 255.0, arrays["test_x"][:, None] / 255.0)
    return ImageData("fashion-mnist", train_x, _labels(arrays["train_y"]), test_x, _labels(arrays["test_y"]), 10)


# -- CIFAR (torchvision) ----------------------------------------------------------------------------------------


def _cifar(key: str, data_dir: str | Path | None, download: bool) -> ImageData:
    try:
        import torchvision
    except ImportError:
        raise ModnasError(
            f"{key} needs torchvision: pip install \"modnas[cifar]\", then pass --data-dir DIR with the dataset"
        ) from None
    if data_dir is None:
        raise ModnasError(f"{key} needs --data-dir DIR (the folder holding, or to receive, the torchvision files)")
    cls = torchvision.datasets.CIFAR10 if key == "cifar10" else torchvision.datasets.CIFAR100
    try:
        train = cls(root=str(data_dir), train=True, download=download)
        test = cls(root=str(data_dir), train=False, download=download)
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted. You can use download=True ..."
        hint = "" if download else "; allow a download (download: true / --download) or copy the files there"
        raise ModnasError(f"{key} not found or damaged in {data_dir}{hint} ({str(exc).splitlines()[0]})") from None
    except OSError as exc:
        raise ModnasError(f"{key}: cannot read or download into {data_dir} ({exc})") from None
    train_x, test_x = _normalised(
        np.transpose(train.data, (0, 3, 1, 2)) / 255.0, np.transpose(test.data, (0, 3, 1, 2)) / 255.0
    )
    classes = 10 if key == "cifar10" else 100
    return ImageData(key, train_x, _labels(np.asarray(train.targets)), test_x, _labels(np.asarray(test.targets)), classes)


# -- augmentation -----------------------------------------------------------------------------------------------


def augment(x: Tensor, generator: torch.Generator, pad: int, flip: bool) -> Tensor:
    """Random crop (zero padding ``pad``) and optional horizontal flip of a batch, on the batch's device.

    The random numbers come from ``generator`` (on the CPU), so a seeded run is repeatable on any device.
    """
    if pad <= 0 and not flip:
        return x
    b, _, h, w = x.shape
    if pad > 0:
        dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
        dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        rows = (dy[:, None] + torch.arange(h, device=x.device)[None])[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device)[None])[:, None, None, :]
        batch = torch.arange(b, device=x.device)[:, None, None, None]
        chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        x = padded[batch, chan, rows, cols]
    if flip:
        mask = (torch.rand(b, generator=generator) < 0.5).to(x.device)
        x = torch.where(mask[:, None, None, None], x.flip(-1), x)
    return x


def augmentation_for(name: str) -> tuple[int, bool]:
    """Standard augmentation per dataset: ``(crop padding, horizontal flip)``; none for the 8x8 digits."""
    key = normalise_name(name)
    if key in TEXT_DATASETS:
        return 0, False  # text: no augmentation
    if key == "digits":
        return 0, False  # 8x8 digits: a shift of one pixel is an eighth of the image, and flips change digits
    if key == "fashion-mnist":
        return 2, True
    return 4, True
