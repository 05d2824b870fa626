"""The budget-counting oracle: distinct queries, repeats free, the budget and the space are hard limits."""

from __future__ import annotations

import numpy as np
import pytest

from modnas.baselines import Oracle
from modnas.errors import ModnasError
from modnas.spaces.nb201 import index_to_string
from modnas.tables.nb201 import nb201_tables


def K(index: int) -> str:
    """The canonical key (architecture string) of a table index."""
    return index_to_string(index)


def test_values_are_the_table_values_and_repeats_are_free():
    oracle = Oracle("fpga", 3)
    v = oracle.query(K(42))
    assert v[0] == pytest.approx(100.0 - float(nb201_tables.accuracy(42)))
    assert v[1] == pytest.approx(float(nb201_tables.latency("fpga", 42)))
    oracle.query(K(42))
    assert oracle.used == 1 and oracle.remaining == 2 and K(42) in oracle
    oracle.query(K(7))
    oracle.query(K(8))
    assert oracle.exhausted and oracle.queried == [K(42), K(7), K(8)]
    assert oracle.values().shape == (3, 2)
    oracle.query(K(7))  # known: still free once the budget is spent


def test_the_budget_is_never_exceeded():
    oracle = Oracle("pixel2", 2)
    oracle.query(K(1))
    oracle.query(K(2))
    with pytest.raises(ModnasError, match="budget of 2 .* spent"):
        oracle.query(K(3))
    assert oracle.queried == [K(1), K(2)]


@pytest.mark.parametrize("bad", [-1, 42, 1.5, True, "3", "|none~0|+", np.array([1, 2])])
def test_keys_outside_the_space_are_rejected(bad):
    oracle = Oracle("fpga", 5)
    with pytest.raises(ModnasError):
        oracle.query(bad)
    assert oracle.used == 0


def test_bad_budget_objectives_and_device():
    with pytest.raises(ModnasError):
        Oracle("fpga", 0)
    with pytest.raises(ModnasError):
        Oracle("fpga", 5, ("latency", "error"))
    with pytest.raises(ModnasError):
        Oracle("no_such_device", 5)


def test_energy_objective_on_an_energy_device():
    oracle = Oracle("eyeriss", 2, ("error", "latency", "energy"))
    assert oracle.query(K(5)).shape == (3,)
