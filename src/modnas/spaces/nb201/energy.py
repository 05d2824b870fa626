"""Differentiable energy for the three-objective setting (HW-NAS-Bench energy on Eyeriss and FPGA).

Why not a learned predictor: HW-NAS-Bench estimates Eyeriss and FPGA costs with analytical models, and in the
bundled table their energy is an *exact* linear function of the op counts (numbers of conv1x1, conv3x3 and
avg-pool edges): a least-squares fit reproduces all 15,624 known values to float precision (see the tests).
There are only these two energy devices, so there is nothing to transfer to either. An exact linear model is
therefore both the most accurate and the cheapest differentiable energy term:

    energy(onehot) = intercept + sum over edges of cost[op] * onehot[edge, op]

It also gives a value for the one architecture whose energy the benchmark lacks (7581, all avg-pool); tables
keep reporting that value as missing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from modnas.errors import ModnasError
from modnas.spaces.nb201.devices import ENERGY_DEVICES
from modnas.spaces.nb201.encoding import NUM_OPS, OPS
from modnas.tables.nb201 import nb201_tables

#: Ops whose count the analytical models depend on; none and skip cost nothing beyond the intercept.
_COSTED_OPS = ("nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


@dataclass(frozen=True)
class LinearOpCostModel:
    """``metric = intercept + sum_edges cost[op]``, fitted on the bundled table."""

    device: str
    metric: str
    unit: str
    intercept: float
    op_costs: tuple[float, ...]  # one per op, in canonical op order
    max_abs_residual: float

    def __call__(self, onehot: torch.Tensor) -> torch.Tensor:
        """Differentiable value for one-hots ``(..., 6, 5)`` -> ``(...)``."""
        costs = torch.tensor(self.op_costs, dtype=onehot.dtype, device=onehot.device)
        return self.intercept + (onehot * costs).sum(dim=(-1, -2))

    def predict(self, op_indices: np.ndarray) -> np.ndarray:
        """Values for op-index rows ``(n, 6)``."""
        return self.intercept + np.asarray(self.op_costs)[np.asarray(op_indices)].sum(axis=-1)


@functools.cache
def energy_model(device: str) -> LinearOpCostModel:
    """The exact linear energy model (mJ) of ``eyeriss`` or ``fpga``."""
    if device not in ENERGY_DEVICES:
        raise ModnasError(f"no energy data for device {device!r}; energy exists for: {', '.join(ENERGY_DEVICES)}")
    return fit_linear_op_cost(device, f"{device}_energy", "mJ")


def fit_linear_op_cost(device: str, column: str, unit: str) -> LinearOpCostModel:
    """Least-squares fit of a HW-NAS-Bench column on op counts (rows with missing values are skipped)."""
    values = nb201_tables.full_column("hwnasbench", column)
    ops = nb201_tables.ops_codes
    known = np.isfinite(values)
    counts = np.stack([(ops == OPS.index(op)).sum(axis=1) for op in _COSTED_OPS], axis=1)[known]
    design = np.column_stack([np.ones(len(counts)), counts])
    coef, *_ = np.linalg.lstsq(design, values[known], rcond=None)
    costs = np.zeros(NUM_OPS)
    for op, c in zip(_COSTED_OPS, coef[1:]):
        costs[OPS.index(op)] = c
    residual = float(np.abs(design @ coef - values[known]).max())
    return LinearOpCostModel(device, column, unit, float(coef[0]), tuple(float(c) for c in costs), residual)
