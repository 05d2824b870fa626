"""Query API over the bundled NAS-Bench-201 tables.

Four gzip CSV files ship with the package (see ``data/README.md`` for provenance and licences), one row per
architecture, all in the canonical NB201 index order. Each file is read on first use only, so importing this module
costs nothing and the first query of a process reads just the file it needs.

All functions take canonical NB201 indices (an ``int`` or an integer array); converting architecture strings to
indices is the search space's job (:func:`modnas.spaces.nb201.to_index`).
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Literal

import numpy as np
import pandas as pd

from modnas.errors import ModnasError

NUM_ARCHS = 15_625

DATASETS = ("cifar10", "cifar100", "imagenet16")

#: Accuracy columns (top-1 %, mean over seeds). The suffix says the training schedule: ``200ep`` is the standard
#: NB201 result, ``12ep`` the low-fidelity hp=12 schedule.
ACCURACY_COLUMNS = (
    "cifar10_test_acc_200ep",
    "cifar100_test_acc_200ep",
    "imagenet16_test_acc_200ep",
    "cifar10_test_acc_12ep",
    "cifar10valid_valid_acc_12ep",
    "cifar100_test_acc_12ep",
    "cifar100_valid_acc_12ep",
    "imagenet16_test_acc_12ep",
    "imagenet16_valid_acc_12ep",
)

#: HW-NAS-Bench metrics (CIFAR-10 input). Units: ``*_latency`` ms, ``*_energy`` mJ, intensity OPs/byte.
HWNASBENCH_METRICS = (
    "edgegpu_latency",
    "edgegpu_energy",
    "raspi4_latency",
    "edgetpu_latency",
    "pixel3_latency",
    "eyeriss_latency",
    "eyeriss_energy",
    "eyeriss_arithmetic_intensity",
    "fpga_latency",
    "fpga_energy",
)

_FILES = {
    "accuracy": "nb201_accuracy.csv.gz",
    "latency": "nb201_latency_help.csv.gz",
    "hwnasbench": "nb201_hwnasbench_cifar10.csv.gz",
    "params_flops": "nb201_params_flops.csv.gz",
}


def _read(kind: str) -> pd.DataFrame:
    path = resources.files("modnas.tables").joinpath("data", _FILES[kind])
    with resources.as_file(path) as p:
        frame = pd.read_csv(p, index_col="arch_index")
    if len(frame) != NUM_ARCHS or not (frame.index.to_numpy() == np.arange(NUM_ARCHS)).all():
        raise ModnasError(f"bundled table {_FILES[kind]} is damaged: expected {NUM_ARCHS} rows in index order")
    return frame


def check_index(index: int | np.ndarray) -> np.ndarray:
    """Validate canonical NB201 indices (integers in 0..15624) and return them as an array."""
    idx = np.asarray(index)
    if idx.dtype.kind not in "iu":
        shown = f"{index!r} " if idx.ndim == 0 else "values "
        raise ModnasError(f"architecture index must be an integer, got {shown}(dtype {idx.dtype})")
    if idx.size and (idx.min() < 0 or idx.max() >= NUM_ARCHS):
        bad = idx[(idx < 0) | (idx >= NUM_ARCHS)].ravel()[0]
        raise ModnasError(f"architecture index {int(bad)} is out of range 0..{NUM_ARCHS - 1}")
    return idx


class NB201Tables:
    """Lazy, cached access to the bundled NB201 tables. Use the shared instance :data:`nb201_tables`."""

    @functools.cached_property
    def accuracy_frame(self) -> pd.DataFrame:
        return _read("accuracy")

    @functools.cached_property
    def latency_frame(self) -> pd.DataFrame:
        frame = _read("latency")
        frame.columns = [c.removeprefix("lat_") if c.startswith("lat_") else c for c in frame.columns]
        return frame

    @functools.cached_property
    def hwnasbench_frame(self) -> pd.DataFrame:
        frame = _read("hwnasbench")
        # HW-NAS-Bench writes -1.0 where it has no Edge-TPU measurement: that is a missing value, not a latency.
        frame["edgetpu_latency"] = frame["edgetpu_latency"].where(frame["edgetpu_latency"] >= 0)
        return frame

    @functools.cached_property
    def params_flops_frame(self) -> pd.DataFrame:
        return _read("params_flops")

    @functools.cached_property
    def arch_strings(self) -> np.ndarray:
        """Architecture string of every canonical index (from the smallest table)."""
        return self.params_flops_frame["arch_str"].to_numpy()

    @functools.cached_property
    def ops_codes(self) -> np.ndarray:
        """``(15625, 6)`` op codes (0..4 in canonical NB201 op order) of every canonical index."""
        return self.params_flops_frame[[f"op{i}" for i in range(6)]].to_numpy(dtype=np.int64)

    @functools.cached_property
    def latency_devices(self) -> tuple[str, ...]:
        return tuple(c for c in self.latency_frame.columns if c != "arch_str")

    # -- queries -------------------------------------------------------------------------------------------------

    def accuracy(
        self,
        index: int | np.ndarray,
        dataset: Literal["cifar10", "cifar100", "imagenet16"] = "cifar10",
        epochs: Literal[200, 12] = 200,
        split: Literal["test", "valid"] = "test",
    ) -> np.ndarray:
        """Top-1 accuracy (%) of architectures; ``cifar10`` valid at 12 epochs is the ``cifar10-valid`` run."""
        column = f"{dataset}_{split}_acc_{epochs}ep"
        if dataset == "cifar10" and split == "valid":
            column = f"cifar10valid_valid_acc_{epochs}ep"
        return self.column("accuracy", column, index)

    def latency(self, device: str, index: int | np.ndarray) -> np.ndarray:
        """Latency in ms from the HELP tables, ``device`` being one of :attr:`latency_devices`."""
        if device not in self.latency_devices:
            raise ModnasError(f"no latency table for device {device!r}; known: {', '.join(self.latency_devices)}")
        return self.column("latency", device, index)

    def hwnasbench(self, metric: str, index: int | np.ndarray) -> np.ndarray:
        """A HW-NAS-Bench metric; missing measurements are NaN (see :meth:`missing`)."""
        return self.column("hwnasbench", metric, index)

    def energy(self, device: Literal["eyeriss", "fpga", "edgegpu"], index: int | np.ndarray) -> np.ndarray:
        """Energy per inference in mJ (HW-NAS-Bench); NaN where the benchmark has no value."""
        return self.hwnasbench(f"{device}_energy", index)

    def params(self, index: int | np.ndarray, dataset: str = "cifar10") -> np.ndarray:
        """Parameter count in millions (NB201's "MB"), BatchNorm affine parameters included."""
        return self.column("params_flops", f"params_mb_{dataset}", index)

    def flops(self, index: int | np.ndarray, dataset: str = "cifar10") -> np.ndarray:
        """Multiply-accumulates in millions, as NB201 counts them."""
        return self.column("params_flops", f"flops_m_{dataset}", index)

    def missing(self, metric: str) -> int:
        """How many architectures have no value for a HW-NAS-Bench metric."""
        return int(self._series("hwnasbench", metric).isna().sum())

    def column(self, kind: str, name: str, index: int | np.ndarray) -> np.ndarray:
        """Values of one column for the given canonical indices (a scalar array for an ``int``)."""
        idx = check_index(index)
        return self._series(kind, name).to_numpy(dtype=np.float64)[idx]

    def full_column(self, kind: str, name: str) -> np.ndarray:
        """One column for all 15,625 architectures, in index order (a read-only view)."""
        values = self._series(kind, name).to_numpy(dtype=np.float64)
        values.flags.writeable = False
        return values

    def _series(self, kind: str, name: str) -> pd.Series:
        if kind not in _FILES:
            raise ModnasError(f"unknown table {kind!r}; choose from: {', '.join(_FILES)}")
        frame = getattr(self, f"{kind}_frame")
        if name not in frame.columns or name == "arch_str":
            choices = ", ".join(c for c in frame.columns if c != "arch_str")
            raise ModnasError(f"unknown {kind} column {name!r}; choose from: {choices}")
        return frame[name]


#: The process-wide instance; every module queries the tables through it so each file is read once.
nb201_tables = NB201Tables()
